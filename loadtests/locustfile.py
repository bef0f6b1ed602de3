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
environment. `--csv` keeps the numbers.

Pass/fail: the P95 of each route class and the error rate are held to the budget table
`loadtests/k6/budgets.json` (the k6 thresholds are checked against the same table); a breach
makes locust exit 1. Headless runs must be bounded (`-t`). `--budget-factor 0.01` scales the
budgets down, to see a run fail on purpose.
"""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gevent.lock import BoundedSemaphore
from locust import HttpUser, between, events, task
from locust.env import Environment
from locust.stats import StatsEntry

LIST_FIELDS = "name,code,status"
BUDGET_TABLE = Path(__file__).resolve().parent / "k6" / "budgets.json"
logger = logging.getLogger("budgets")


def route_class(name: str) -> str:
    """The budget class of a request, by the name locust records it under: one document
    (`.../[id]`, its revalidation, a write) is crud; a search, a report; the rest lists."""
    if "/search" in name:
        return "search"
    if "/reports/" in name:
        return "reports"
    path = name.removesuffix(" (revalidate)")
    if path.endswith("/[id]") or path.split(" ")[0] in ("PATCH", "PUT", "POST", "DELETE"):
        return "crud"
    return "lists"


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--pages", type=int, default=3, help="pages to follow per browse")
    parser.add_argument(
        "--budget-factor", type=float, default=1.0, help="scale every P95 budget (0.01 fails)"
    )


@events.test_start.add_listener
def _require_key(environment: Environment, **kwargs: Any) -> None:
    if not os.environ.get("API_KEY"):
        raise SystemExit(
            "API_KEY is required: "
            "python -m enterprise keys create --name locust --role platform_admin"
        )
    options = environment.parsed_options
    if options is not None and options.headless and not options.run_time:
        raise SystemExit("a headless run must be bounded: pass -t (e.g. -t 30s)")


def budget_breaches(environment: Environment, factor: float) -> list[str]:
    """Route classes over their P95 budget, and the error rate over its limit."""
    table = json.loads(BUDGET_TABLE.read_text())
    classes: dict[str, StatsEntry] = {}
    for entry in environment.stats.entries.values():
        kind = route_class(entry.name)
        merged = classes.setdefault(kind, StatsEntry(environment.stats, kind, ""))
        merged.extend(entry)
    breaches = []
    for kind, merged in sorted(classes.items()):
        budget = table["p95_ms"].get(kind)
        if budget is None or not merged.num_requests:
            continue
        p95 = merged.get_response_time_percentile(0.95)
        verdict = "ok" if p95 <= budget * factor else "OVER"
        logger.info("%s: P95 %.0f ms, budget %.0f ms: %s", kind, p95, budget * factor, verdict)
        if verdict != "ok":
            breaches.append(f"{kind} P95 {p95:.0f} ms > {budget * factor:g} ms")
    error_rate = environment.stats.total.fail_ratio
    limit = table["max_error_rate"]
    logger.info("error rate %.4f, limit %.4f", error_rate, limit)
    if error_rate > limit:
        breaches.append(f"error rate {error_rate:.4f} > {limit}")
    return breaches


@events.quitting.add_listener
def _hold_to_budgets(environment: Environment, **kwargs: Any) -> None:
    options = environment.parsed_options
    breaches = budget_breaches(environment, options.budget_factor if options else 1.0)
    for breach in breaches:
        logger.error("budget missed: %s", breach)
    if breaches:
        environment.process_exit_code = 1


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
