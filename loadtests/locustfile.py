"""Locust scenarios for the enterprise API (users, not benchmarks).

    API_KEY=$(python -m enterprise keys create --name locust --role platform_admin) \
    locust -f loadtests/locustfile.py --headless -u 10 -r 5 -t 15s --host http://127.0.0.1:8000

Behaviour of one simulated user (weights in brackets):

* [6] browse an organization's clinics by name with cursor paging (follows `page.next`);
* [4] GET a clinic item, then revalidate it with `If-None-Match` (expects 304 unless it changed);
* [3] search clinics by a name prefix within an organization;
* [1] occasionally PATCH a clinic's manager with `If-Match` (412 when someone else won the
      race: re-read and move on, which is the documented client behaviour).

`API_KEY` (platform_admin, or an org key to stay inside one tenant) comes from the
environment. Percentile targets per route class are in DESIGN.md; `--csv` keeps the numbers.
"""

from __future__ import annotations

import os
import random
from typing import Any
from urllib.parse import quote

from gevent.lock import BoundedSemaphore
from locust import HttpUser, between, events, task
from locust.env import Environment

LIST_FIELDS = "name,code,status"


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--pages", type=int, default=3, help="pages to follow per browse")


@events.test_start.add_listener
def _require_key(environment: Environment, **kwargs: Any) -> None:
    if not os.environ.get("API_KEY"):
        raise SystemExit(
            "API_KEY is required: "
            "python -m enterprise keys create --name locust --role platform_admin"
        )


class ApiUser(HttpUser):
    wait_time = between(0.1, 0.5)

    # Discovered once per locust process and shared by every user: on FerretDB each list
    # scans the collection, and 10 users each discovering their own would swamp the test.
    _catalog: tuple[list[str], list[dict[str, str]]] | None = None
    _catalog_lock = BoundedSemaphore()

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {os.environ['API_KEY']}"
        self.client.headers["Accept-Encoding"] = "br, gzip"
        self.etags: dict[str, str] = {}
        with ApiUser._catalog_lock:
            if ApiUser._catalog is None:
                ApiUser._catalog = self._discover()
        self.organizations, self.clinics = ApiUser._catalog

    def _discover(self) -> tuple[list[str], list[dict[str, str]]]:
        res = self.client.get(
            "/api/v1/organizations?limit=100&fields=name", name="/api/v1/organizations"
        )
        if res.status_code != 200:
            return [], []
        organizations = [org["id"] for org in res.json()["data"]]
        clinics: list[dict[str, str]] = []
        for org in random.sample(organizations, min(3, len(organizations))):
            res = self.client.get(
                f"/api/v1/organizations/{org}/clinics?limit=50&fields={LIST_FIELDS}",
                name="/api/v1/organizations/[id]/clinics",
            )
            if res.status_code == 200:
                data = res.json()["data"]
                clinics += [{"id": c["id"], "org": org, "name": c["name"]} for c in data]
        return organizations, clinics

    @task(6)
    def browse_clinics(self) -> None:
        if not self.organizations:
            return
        org = random.choice(self.organizations)
        url = f"/api/v1/organizations/{org}/clinics?limit=20&fields={LIST_FIELDS}"
        for _ in range(
            self.environment.parsed_options.pages if self.environment.parsed_options else 3
        ):
            res = self.client.get(url, name="/api/v1/organizations/[id]/clinics")
            if res.status_code != 200:
                return
            cursor = res.json()["page"]["next"]
            if not cursor:
                return
            url = (
                f"/api/v1/organizations/{org}/clinics?limit=20&fields={LIST_FIELDS}"
                f"&cursor={quote(cursor)}"
            )

    @task(4)
    def clinic_with_revalidation(self) -> None:
        if not self.clinics:
            return
        clinic = random.choice(self.clinics)
        path = f"/api/v1/clinics/{clinic['id']}"
        etag = self.etags.get(clinic["id"])
        headers = {"If-None-Match": etag} if etag else {}
        name = "/api/v1/clinics/[id] (revalidate)" if etag else "/api/v1/clinics/[id]"
        with self.client.get(path, headers=headers, name=name, catch_response=True) as res:
            if res.status_code == 200:
                self.etags[clinic["id"]] = res.headers["ETag"]
            elif res.status_code == 304 and etag:
                res.success()
            else:
                res.failure(f"unexpected {res.status_code}")

    @task(3)
    def search(self) -> None:
        if not self.clinics:
            return
        clinic = random.choice(self.clinics)
        prefix = clinic["name"][: random.randint(3, 10)]
        self.client.get(
            f"/api/v1/clinics/search?organizationId={clinic['org']}&q={quote(prefix)}&fields={LIST_FIELDS}",
            name="/api/v1/clinics/search",
        )

    @task(1)
    def patch_manager(self) -> None:
        if not self.clinics:
            return
        clinic = random.choice(self.clinics)
        path = f"/api/v1/clinics/{clinic['id']}"
        current = self.client.get(path, name="/api/v1/clinics/[id]")
        if current.status_code != 200:
            return
        body = {"managerUserId": f"user-{random.randrange(1_000_000):06d}"}
        with self.client.patch(
            path,
            json=body,
            headers={
                "If-Match": current.headers["ETag"],
                "Content-Type": "application/merge-patch+json",
            },
            name="PATCH /api/v1/clinics/[id]",
            catch_response=True,
        ) as res:
            if res.status_code == 200:
                self.etags[clinic["id"]] = res.headers["ETag"]
            elif res.status_code == 412:
                res.success()  # lost a race with another user: expected under load
                self.etags.pop(clinic["id"], None)
            else:
                res.failure(f"unexpected {res.status_code}: {res.text[:200]}")
