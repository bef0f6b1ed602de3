"""Locust scenarios for the enterprise API: a mix that looks like real use, judged by the one
budget table (`loadtests/k6/budgets.json`).

    bash loadtests/locust.sh                 # = make loadtest: starts the API, makes the keys
    API_KEY=<platform_admin key> ORG_KEYS="<org id>=<org_admin key>,..." \
      locust -f loadtests/locustfile.py --headless -u 10 -r 5 -t 30s --host http://127.0.0.1:8000

Two kinds of user, picked by weight: `AdminUser` [3] holds a platform_admin key and roams over
every organization; `OrgUser` [1] holds an org_admin key of one organization (`ORG_KEYS`) and
stays inside it (its cached responses are a partition of their own). Each runs the same tasks
(weights per task, out of 100; the k6 script `loadtests/k6/mix.js` uses the same ones):

* [36] read one clinic (3 in 4) or organization by id with a `fields=` projection;
* [20] revalidate something read before with `If-None-Match` (304 unless it changed);
* [22] walk an organization's clinics with the opaque cursor (`page.next`, up to `--pages`);
* [12] search clinics by a name prefix within an organization;
* [ 6] the organization summary report;
* [ 3] PATCH a clinic with `If-Match` after reading it (412 when another user won the race:
       re-read and move on, which is the documented client behaviour);
* [ 1] create a clinic (201 with Location), then read it back.

`--write-factor F` (env `WRITE_FACTOR` in locust.sh) keeps the share F of the two write tasks
and turns the rest into reads by id: the write share is what differs most between users.

Reads are skewed as in real traffic: organizations and clinics are picked with Zipf weights
(the n-th most popular 1/n as often as the first), over up to 10 organizations and 50 clinics
each, discovered once per locust process. Writes pick a clinic uniformly: an edit does not
follow read popularity. Every write invalidates the cached reads of its document (and its
organization's lists), so the write share sets the cache hit rate a run can reach.

Pass/fail (`loadtests/budgets.py`): the P95 of each route class, the error rate, and the cache
hit rate per route class (responses with `X-Cache: hit|stale` over those carrying `X-Cache`)
are held to the table; a miss makes locust exit 1. P95 and hit rate are judged on the requests
after `--warmup` seconds (20: the cache starts cold, the targets are for a warm one), the error
rate on every request. Headless runs must be bounded (`-t`).
`--budget-factor 0.01` (env `BUDGET_FACTOR` in locust.sh) scales the P95 budgets down, to see
a run fail on purpose.

Step-load mode (`LOCUST_STEP_USERS` set; `loadtests/stepload.sh` drives it): every user aims at
`LOCUST_USER_RATE` tasks/s, and the number of users rises by `LOCUST_STEP_USERS` every
`LOCUST_STEP_SECONDS` until a step misses a budget or `LOCUST_STEP_MAX` steps ran, after
`LOCUST_STEP_WARMUP` seconds (20) at the first step's users that warm the cache. Each step's
P95s and errors are judged on its own requests (after `LOCUST_STEP_SETTLE` seconds), the hit
rate on every request since the warm-up; the steps and the highest rate that held go to
`LOCUST_STEP_OUT` (JSON). The run exits 0 when at least one step held.

`LOCUST_SERIES` names a CSV that gets one row per route every `LOCUST_SERIES_SECONDS` (2):
requests, failures, P50/P95/P99 and cache hits of that interval alone, for the report's plots.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any
from urllib.parse import quote

import gevent
from gevent.lock import BoundedSemaphore
from locust import HttpUser, LoadTestShape, between, constant_throughput, events, task
from locust.env import Environment

sys.path.insert(0, str(Path(__file__).resolve().parent))
import budgets as budget_table  # noqa: E402 - beside this file, not a package locust knows

LIST_FIELDS = "name,code,status"
# The projections clients ask for on one document, by collection.
ITEM_FIELDS = {
    "clinics": ("name,code,status", "name,address,managerUserId"),
    "organizations": ("name,status", "name,status,subscriptionTier"),
}
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


_ZIPF: dict[int, list[float]] = {}  # number of items -> cumulative Zipf weights


def popular[T](items: list[T]) -> T:
    """One of `items`, the n-th picked 1/n as often as the first (Zipf, s = 1)."""
    weights = _ZIPF.get(len(items))
    if weights is None:
        weights = _ZIPF[len(items)] = list(
            accumulate(1 / rank for rank in range(1, len(items) + 1))
        )
    return random.choices(items, cum_weights=weights)[0]


# -- measuring: histograms per route, diffed between two moments -----------------------------


@dataclass
class RouteCounts:
    requests: int = 0
    failures: int = 0
    times: Counter[int] = field(default_factory=Counter)  # locust's rounded ms -> count
    cache_lookups: int = 0
    cache_hits: int = 0

    def minus(self, earlier: RouteCounts) -> RouteCounts:
        times = Counter(self.times)
        times.subtract(earlier.times)
        return RouteCounts(
            self.requests - earlier.requests,
            self.failures - earlier.failures,
            +times,
            self.cache_lookups - earlier.cache_lookups,
            self.cache_hits - earlier.cache_hits,
        )

    def add(self, other: RouteCounts) -> None:
        self.requests += other.requests
        self.failures += other.failures
        self.times.update(other.times)
        self.cache_lookups += other.cache_lookups
        self.cache_hits += other.cache_hits


def percentile(times: Counter[int], fraction: float) -> float:
    """The smallest recorded time with at least `fraction` of the requests at or below it."""
    total = sum(times.values())
    if not total:
        return 0.0
    wanted, seen = fraction * total, 0
    for ms in sorted(times):
        seen += times[ms]
        if seen >= wanted:
            return float(ms)
    return float(max(times))


# X-Cache outcomes per route name, counted as responses arrive (cumulative).
CACHE: dict[str, list[int]] = {}


@events.request.add_listener
def _count_cache(name: str, response: Any = None, **kwargs: Any) -> None:
    state = response.headers.get("X-Cache") if response is not None else None
    if state:
        counts = CACHE.setdefault(name, [0, 0])
        counts[0] += 1
        counts[1] += state in ("hit", "stale")


def snapshot(environment: Environment) -> dict[str, RouteCounts]:
    """Cumulative counts per route name now."""
    taken = {}
    for entry in environment.stats.entries.values():
        lookups, hits = CACHE.get(entry.name, (0, 0))
        route = taken.setdefault(entry.name, RouteCounts())
        route.add(
            RouteCounts(
                entry.num_requests,
                entry.num_failures,
                Counter(entry.response_times),
                0,
                0,
            )
        )
        route.cache_lookups, route.cache_hits = lookups, hits
    return taken


def between_snapshots(
    later: dict[str, RouteCounts], earlier: dict[str, RouteCounts]
) -> dict[str, RouteCounts]:
    return {name: counts.minus(earlier.get(name, RouteCounts())) for name, counts in later.items()}


def run_figures(routes: dict[str, RouteCounts]) -> budget_table.RunFigures:
    """Per route class: P95 over the merged histograms, cache hits; totals."""
    merged: dict[str, RouteCounts] = {}
    for name, counts in routes.items():
        merged.setdefault(route_class(name), RouteCounts()).add(counts)
    run = budget_table.RunFigures()
    for kind, counts in merged.items():
        run.classes[kind] = budget_table.ClassFigures(
            counts.requests, percentile(counts.times, 0.95), counts.cache_lookups, counts.cache_hits
        )
        run.requests += counts.requests
        run.failures += counts.failures
    return run


def describe(run: budget_table.RunFigures) -> Iterator[str]:
    for kind, figures in sorted(run.classes.items()):
        rate = figures.hit_rate
        shown = (
            f", cache hit rate {rate:.3f} of {figures.cache_lookups}" if rate is not None else ""
        )
        yield f"{kind}: {figures.requests} requests, P95 {figures.p95_ms:.0f} ms{shown}"
    yield f"errors: {run.failures} of {run.requests} ({run.error_rate:.4f})"


# -- options, start and the verdict -----------------------------------------------------------


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--pages", type=int, default=3, help="pages to follow per list walk")
    parser.add_argument(
        "--budget-factor", type=float, default=1.0, help="scale every P95 budget (0.01 fails)"
    )
    parser.add_argument(
        "--warmup", type=float, default=20.0, help="seconds not judged for P95 and hit rate"
    )
    parser.add_argument(
        "--write-factor",
        type=float,
        default=1.0,
        help="scale the writes' share (0.25: a quarter of them; the rest become reads by id)",
    )


SERIES_STOP = gevent.event.Event()
START: dict[str, dict[str, RouteCounts]] = {}


@events.test_start.add_listener
def _start(environment: Environment, **kwargs: Any) -> None:
    if not os.environ.get("API_KEY"):
        raise SystemExit(
            "API_KEY is required: "
            "python -m enterprise keys create --name locust --role platform_admin"
        )
    options = environment.parsed_options
    if options is not None and options.headless and not options.run_time:
        raise SystemExit("a headless run must be bounded: pass -t (e.g. -t 30s)")
    START["run"] = START["all"] = snapshot(environment)
    if options is not None:
        logger.info(
            "budgets: mix with write factor %g (%.1f %% of tasks write), warm-up %g s, "
            "P95 budgets x %g",
            options.write_factor,
            4 * options.write_factor,
            float(os.environ.get("LOCUST_STEP_WARMUP", "20")) if STEP_MODE else options.warmup,
            options.budget_factor,
        )
    gevent.spawn(_end_warmup, environment, options.warmup if options is not None else 20.0)
    if os.environ.get("LOCUST_SERIES"):
        gevent.spawn(_write_series, environment, Path(os.environ["LOCUST_SERIES"]))


def _end_warmup(environment: Environment, seconds: float) -> None:
    gevent.sleep(seconds)
    START["run"] = snapshot(environment)
    logger.info("warm-up of %g s over: judging P95 and hit rate from here", seconds)


def _write_series(environment: Environment, path: Path) -> None:
    interval = float(os.environ.get("LOCUST_SERIES_SECONDS", "2"))
    before = snapshot(environment)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(
            [
                "epoch",
                "route",
                "class",
                "requests",
                "failures",
                "p50_ms",
                "p95_ms",
                "p99_ms",
                "cache_lookups",
                "cache_hits",
                "users",
            ]
        )
        while not SERIES_STOP.wait(interval):
            now = snapshot(environment)
            for name, counts in sorted(between_snapshots(now, before).items()):
                if counts.requests:
                    writer.writerow(
                        [
                            f"{time.time():.1f}",
                            name,
                            route_class(name),
                            counts.requests,
                            counts.failures,
                            percentile(counts.times, 0.5),
                            percentile(counts.times, 0.95),
                            percentile(counts.times, 0.99),
                            counts.cache_lookups,
                            counts.cache_hits,
                            environment.runner.user_count if environment.runner else 0,
                        ]
                    )
            out.flush()
            before = now


@events.quitting.add_listener
def _verdict(environment: Environment, **kwargs: Any) -> None:
    SERIES_STOP.set()
    if STEP_MODE:
        held = [step for step in STEPS if step["held"]]
        environment.process_exit_code = 0 if held else 1
        return
    options = environment.parsed_options
    factor = options.budget_factor if options else 1.0
    now = snapshot(environment)
    figures = run_figures(between_snapshots(now, START.get("run", {})))
    whole = run_figures(between_snapshots(now, START.get("all", {})))
    figures.requests, figures.failures = whole.requests, whole.failures  # errors: every request
    for line in describe(figures):
        logger.info("%s", line)
    breaches = budget_table.breaches(budget_table.load(), figures, p95_factor=factor)
    for breach in breaches:
        logger.error("budget missed: %s", breach)
    logger.info("verdict: %s", "budgets missed" if breaches else "every budget held")
    environment.process_exit_code = 1 if breaches else 0


# -- step load ----------------------------------------------------------------------------------


STEP_MODE = bool(os.environ.get("LOCUST_STEP_USERS"))
STEPS: list[dict[str, Any]] = []  # step-load mode: each step's figures and verdict

# locust drives a run with any LoadTestShape the file defines, so it exists only in this mode.
if STEP_MODE:

    class StepLoad(LoadTestShape):
        """Raise the users step by step; stop after the first step that misses a budget."""

        def __init__(self) -> None:
            super().__init__()
            self.step_users = int(os.environ.get("LOCUST_STEP_USERS", "0") or 0)
            self.step_seconds = float(os.environ.get("LOCUST_STEP_SECONDS", "20"))
            self.settle = float(os.environ.get("LOCUST_STEP_SETTLE", "4"))
            self.max_steps = int(os.environ.get("LOCUST_STEP_MAX", "8"))
            self.warmup = float(os.environ.get("LOCUST_STEP_WARMUP", "20"))
            self.warm: dict[str, RouteCounts] | None = None  # counts when the warm-up ended
            self.out = os.environ.get("LOCUST_STEP_OUT")
            self.step = 0
            self.mark: dict[str, RouteCounts] | None = None
            self.marked_at = 0.0
            self.done = False

        def tick(self) -> tuple[int, float] | None:
            if self.done or not self.step_users:
                return None
            elapsed = self.get_run_time() - self.warmup
            if elapsed < 0:  # warming the cache at the first step's users: not judged
                return self.step_users, float(self.step_users)
            if self.warm is None:
                self.warm = snapshot(self.runner.environment)
            step = int(elapsed // self.step_seconds)
            if step != self.step:  # a step ended: judge it
                held = self._judge()
                self.step, self.mark = step, None
                if not held or step >= self.max_steps:
                    self.done = True
                    return None
            if self.mark is None and elapsed - step * self.step_seconds >= self.settle:
                self.mark, self.marked_at = snapshot(self.runner.environment), time.time()
            users = self.step_users * (step + 1)
            return users, float(users)

        def _judge(self) -> bool:
            if self.mark is None:
                return True  # too short to judge (a step shorter than its settle time)
            seconds = time.time() - self.marked_at
            now = snapshot(self.runner.environment)
            figures = run_figures(between_snapshots(now, self.mark))
            # The hit rate is the cache's state, not the step's: over every step so far (a step
            # of a few seconds has too few lookups to judge it on its own).
            since_warm = run_figures(between_snapshots(now, self.warm or {}))
            for kind, step_figures in figures.classes.items():
                cumulative = since_warm.classes[kind]
                step_figures.cache_lookups = cumulative.cache_lookups
                step_figures.cache_hits = cumulative.cache_hits
            breaches = budget_table.breaches(budget_table.load(), figures)
            users = self.step_users * (self.step + 1)
            options = self.runner.environment.parsed_options
            record = {
                "write_factor": options.write_factor if options is not None else 1.0,
                "step": self.step + 1,
                "users": users,
                "offered_tasks_per_s": users * float(os.environ.get("LOCUST_USER_RATE", "1")),
                "seconds": round(seconds, 1),
                "requests": figures.requests,
                "rps": round(figures.requests / seconds, 1) if seconds else 0.0,
                "error_rate": figures.error_rate,
                "classes": {
                    kind: {
                        "requests": f.requests,
                        "p95_ms": f.p95_ms,
                        "hit_rate": f.hit_rate,
                        "cache_lookups": f.cache_lookups,
                    }
                    for kind, f in figures.classes.items()
                },
                "breaches": breaches,
                "held": not breaches,
                "until": time.time(),
            }
            STEPS.append(record)
            logger.info(
                "step %d: %d users, %.1f req/s: %s",
                record["step"],
                users,
                record["rps"],
                "; ".join(breaches) or "every budget held",
            )
            if self.out:
                held = [s for s in STEPS if s["held"]]
                best = max(held, key=lambda s: s["rps"]) if held else None
                Path(self.out).write_text(
                    json.dumps(
                        {
                            "steps": STEPS,
                            "max_sustainable_rps": best and best["rps"],
                            "max_sustainable_users": best and best["users"],
                        },
                        indent=1,
                    )
                )
            return not breaches


# -- the users ----------------------------------------------------------------------------------


@dataclass
class Catalog:
    """Organizations and some of their clinics, discovered once per locust process."""

    organizations: list[str]
    clinics: dict[str, list[dict[str, str]]]  # organization id -> clinics


class MixUser(HttpUser):
    abstract = True
    wait_time = (
        constant_throughput(float(os.environ.get("LOCUST_USER_RATE", "1")))
        if STEP_MODE
        else between(0.1, 0.5)
    )
    _catalog: Catalog | None = None
    _catalog_lock = BoundedSemaphore()

    def key(self) -> tuple[str, str | None]:
        """The raw key and the organization it is bound to (None: every organization)."""
        raise NotImplementedError

    def on_start(self) -> None:
        raw, self.organization = self.key()
        self.client.headers["Authorization"] = f"Bearer {raw}"
        self.client.headers["Accept-Encoding"] = "br, gzip"
        self.seen: dict[tuple[str, str], str] = {}  # (path, name) -> ETag
        with MixUser._catalog_lock:
            if MixUser._catalog is None:
                MixUser._catalog = self._discover()
        self.catalog = MixUser._catalog

    def _discover(self) -> Catalog:
        admin = {"Authorization": f"Bearer {os.environ['API_KEY']}"}
        res = self.client.get(
            "/api/v1/organizations?limit=100&fields=name",
            headers=admin,
            name="/api/v1/organizations",
        )
        organizations = [org["id"] for org in res.json()["data"]] if res.ok else []
        wanted = set(random.sample(organizations, min(10, len(organizations))))
        wanted |= {org for org, _ in org_keys()}
        clinics: dict[str, list[dict[str, str]]] = {}
        for org in sorted(wanted):
            res = self.client.get(
                f"/api/v1/organizations/{org}/clinics?limit=50&fields={LIST_FIELDS}",
                headers=admin,
                name="/api/v1/organizations/[id]/clinics",
            )
            if res.ok:
                clinics[org] = [{"id": c["id"], "name": c["name"]} for c in res.json()["data"]]
        return Catalog(organizations, {org: found for org, found in clinics.items() if found})

    def _org(self) -> str | None:
        if self.organization is not None:
            return self.organization if self.organization in self.catalog.clinics else None
        return popular(list(self.catalog.clinics)) if self.catalog.clinics else None

    def _clinic(self) -> tuple[str, dict[str, str]] | None:
        org = self._org()
        return (org, popular(self.catalog.clinics[org])) if org else None

    def _writes(self) -> bool:
        """Whether this write task writes, by `--write-factor` (else it reads by id)."""
        options = self.environment.parsed_options
        return random.random() < (options.write_factor if options is not None else 1.0)

    def _get(self, path: str, name: str) -> None:
        with self.client.get(path, name=name, catch_response=True) as res:
            if res.status_code == 200:
                self.seen[(path, name)] = res.headers.get("ETag", "")
            else:
                res.failure(f"unexpected {res.status_code}: {res.text[:200]}")

    @task(36)
    def read_item(self) -> None:
        picked = self._clinic()
        if picked is None:
            return
        org, clinic = picked
        if random.random() < 0.75:
            fields = random.choice(ITEM_FIELDS["clinics"])
            self._get(f"/api/v1/clinics/{clinic['id']}?fields={fields}", "/api/v1/clinics/[id]")
        else:
            fields = random.choice(ITEM_FIELDS["organizations"])
            self._get(f"/api/v1/organizations/{org}?fields={fields}", "/api/v1/organizations/[id]")

    @task(20)
    def revalidate(self) -> None:
        known = [(key, etag) for key, etag in self.seen.items() if etag]
        if not known:
            return self.read_item()
        (path, name), etag = random.choice(known)
        with self.client.get(
            path,
            headers={"If-None-Match": etag},
            name=f"{name} (revalidate)",
            catch_response=True,
        ) as res:
            if res.status_code == 200:
                self.seen[(path, name)] = res.headers.get("ETag", "")
            elif res.status_code != 304:
                res.failure(f"unexpected {res.status_code}")

    @task(22)
    def walk_list(self) -> None:
        org = self._org()
        if org is None:
            return
        base = f"/api/v1/organizations/{org}/clinics?limit=20&fields={LIST_FIELDS}"
        url = base
        pages = self.environment.parsed_options.pages if self.environment.parsed_options else 3
        for _ in range(pages):
            with self.client.get(
                url, name="/api/v1/organizations/[id]/clinics", catch_response=True
            ) as res:
                if res.status_code != 200:
                    res.failure(f"unexpected {res.status_code}")
                    return
                if url == base:
                    self.seen[(url, "/api/v1/organizations/[id]/clinics")] = res.headers.get(
                        "ETag", ""
                    )
                cursor = res.json()["page"]["next"]
            if not cursor:
                return
            url = f"{base}&cursor={quote(cursor)}"

    @task(12)
    def search(self) -> None:
        picked = self._clinic()
        if picked is None:
            return
        org, clinic = picked
        prefix = quote(clinic["name"][: random.randint(3, 8)])
        self._get(
            f"/api/v1/clinics/search?organizationId={org}&q={prefix}&fields={LIST_FIELDS}",
            "/api/v1/clinics/search",
        )

    @task(6)
    def report(self) -> None:
        org = self._org()
        if org is not None:
            self._get(
                f"/api/v1/reports/organizations/{org}/summary",
                "/api/v1/reports/organizations/[id]/summary",
            )

    @task(3)
    def patch_clinic(self) -> None:
        if not self._writes():
            return self.read_item()
        org = self._org()
        if org is None:
            return
        clinic = random.choice(self.catalog.clinics[org])
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
            if res.status_code == 412:
                res.success()  # lost a race with another user: expected under load
            elif res.status_code != 200:
                res.failure(f"unexpected {res.status_code}: {res.text[:200]}")

    @task(1)
    def create_clinic(self) -> None:
        if not self._writes():
            return self.read_item()
        org = self._org()
        if org is None:
            return
        code = f"LT{random.randrange(36**8):08x}"
        body = {
            "name": f"Load test clinic {code}",
            "code": code,
            "address": {
                "line1": "1 Test St",
                "city": "Austin",
                "state": "TX",
                "postalCode": "73301",
            },
        }
        with self.client.post(
            f"/api/v1/organizations/{org}/clinics",
            json=body,
            name="POST /api/v1/organizations/[id]/clinics",
            catch_response=True,
        ) as res:
            if res.status_code != 201:
                res.failure(f"unexpected {res.status_code}: {res.text[:200]}")
                return
            location = res.headers.get("Location", "")
        if location:
            self._get(location.removeprefix(self.host or ""), "/api/v1/clinics/[id]")


def org_keys() -> list[tuple[str, str]]:
    """`ORG_KEYS` = "<organization id>=<org_admin key>,...": the organization-scoped keys."""
    pairs = [item.split("=", 1) for item in os.environ.get("ORG_KEYS", "").split(",") if item]
    return [(org, key) for org, key in pairs]


class AdminUser(MixUser):
    weight = 3

    def key(self) -> tuple[str, str | None]:
        return os.environ["API_KEY"], None


class OrgUser(MixUser):
    weight = 1

    def key(self) -> tuple[str, str | None]:
        keys = org_keys()
        if not keys:  # no organization keys given: an admin, like the others
            return os.environ["API_KEY"], None
        org, raw = random.choice(keys)
        return raw, org
