"""The SRE surface: who may read it, slow-query entries with plans, and figures that are the
same whichever of two real workers answers."""

from __future__ import annotations

import asyncio
import math
import re
import time
from typing import Any

import httpx
import orjson
import pytest
from bson import ObjectId
from prometheus_client.parser import text_string_to_metric_families

from enterprise.app import create_app
from enterprise.settings import Settings
from tests.conftest import Server, make_client, new_key, server_env
from tests.integration.factories import assert_problem, create_clinic, create_organization

pytestmark = pytest.mark.integration

PERFORMANCE = [
    "/api/v1/performance/metrics/summary",
    "/api/v1/performance/budgets",
    "/api/v1/performance/cache/stats",
    "/api/v1/performance/circuit-breakers",
    "/api/v1/performance/slow-queries",
]
METRICS_TOKEN = "scrape-token-for-tests-0123456789"
ITEM_ROUTE = "/api/v1/organizations/{organization_id}"


@pytest.fixture
async def sre_app(settings: Settings) -> Any:
    """On clients of its own: the app's MongoDB client carries its command listener."""
    return create_app(
        settings.with_overrides(metrics_token=METRICS_TOKEN, db_slow_query_threshold=0)
    )


async def test_role_matrix_of_every_new_route(sre_app: Any) -> None:
    async with await make_client(sre_app) as http:
        organization = (
            await http.post(
                "/api/v1/organizations",
                json={"name": "Matrix Dental"},
                headers=await new_key(sre_app),
            )
        ).json()["id"]
        keys = {
            "platform_admin": await new_key(sre_app),
            "sre": await new_key(sre_app, "sre"),
            "org_admin": await new_key(sre_app, "org_admin", organization),
            "org_reader": await new_key(sre_app, "org_reader", organization),
            "metrics token": {"Authorization": f"Bearer {METRICS_TOKEN}"},
            "no key": {},
            "unknown key": {"Authorization": "Bearer ent_not-a-key"},
        }
        expected_performance = {
            "platform_admin": 200,
            "sre": 200,
            "org_admin": 403,
            "org_reader": 403,
            "metrics token": 403,
            "no key": 401,
            "unknown key": 401,
        }
        expected_metrics = {**expected_performance, "metrics token": 200}
        seen: dict[tuple[str, str], int] = {}
        for path in [*PERFORMANCE, "/metrics"]:
            for who, headers in keys.items():
                answer = await http.get(path, headers=headers)
                seen[(path, who)] = answer.status_code
                if answer.status_code != 200:
                    assert_problem(answer, answer.status_code)
                else:
                    assert answer.headers["cache-control"] == "no-store"
        wanted = {
            (path, who): (expected_metrics if path == "/metrics" else expected_performance)[who]
            for path in [*PERFORMANCE, "/metrics"]
            for who in keys
        }
        assert seen == wanted
        # The dashboard page holds no data: served to anyone, under a strict CSP.
        page = await http.get("/dashboard")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "default-src 'none'" in page.headers["content-security-policy"]
        for asset in ("dashboard.js", "dashboard.css"):
            assert (await http.get(f"/dashboard/{asset}")).status_code == 200
        assert_problem(await http.get("/dashboard/secrets.txt"), 404)
        assert_problem(await http.get("/dashboard/index.html"), 404)


async def test_bad_input_to_the_sre_routes_is_a_problem(sre_app: Any) -> None:
    async with await make_client(sre_app) as http:
        sre = await new_key(sre_app, "sre")
        for path in [*PERFORMANCE, "/metrics"]:
            body = assert_problem(await http.get(f"{path}?window=5m", headers=sre), 400)
            assert "window" in body["detail"]


async def test_a_slow_search_is_reported_with_its_shape_and_plan(sre_app: Any) -> None:
    """Threshold 0 ms: every command is slow, so the unindexed search is reported."""
    secret = "Zzyzx Molar"
    async with await make_client(sre_app) as http:
        admin = await new_key(sre_app)
        organization = await create_organization(http, admin)
        await create_clinic(http, admin, organization["id"], name=f"{secret} Clinic")
        found = await http.get(f"/api/v1/clinics/search?q={secret}", headers=admin)
        assert found.status_code == 200
        sre = await new_key(sre_app, "sre")
        entry: dict[str, Any] = {}
        for _ in range(100):  # the explain runs in the background; wait for its plan
            body = (await http.get("/api/v1/performance/slow-queries", headers=sre)).json()
            searches = [
                q
                for q in body["queries"]
                if q["collection"] == "clinics" and q["command"] in ("find", "aggregate")
            ]
            if searches and searches[0]["plan"].get("status") != "pending":
                entry = searches[0]
                break
            await asyncio.sleep(0.05)
        assert entry, body
    assert body["thresholdMs"] == 0
    assert entry["ms"] >= 0
    assert entry["shape"]
    assert secret not in orjson.dumps(body).decode()  # values never reach the report
    plan = entry["plan"]
    if plan["available"]:  # MongoDB
        assert plan["winningStage"]
        assert plan["docsExamined"] is not None
    else:  # FerretDB: no usable plan, and the entry says why
        assert "no winningPlan" in plan["reason"]


def _percentile(values: list[float], p: float) -> float:
    """Nearest rank, as HdrHistogram computes it when p/100 * n is whole."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _recorded_ms(response: httpx.Response) -> float:
    """The duration the server recorded for this request (Server-Timing `route`)."""
    match = re.search(r"route;dur=([0-9.]+)", response.headers["server-timing"])
    assert match, response.headers
    return float(match.group(1))


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def _from_both_workers(base_url: str, sre: dict[str, str], path: str) -> list[Any]:
    """Ask on fresh connections until each of the two workers has answered."""
    answers: dict[int, dict[str, Any]] = {}
    for _ in range(60):
        async with httpx.AsyncClient(base_url=base_url, headers=sre) as http:
            body = (await http.get(path)).json()
        answers.setdefault(body["answeredBy"], body)
        if len(answers) == 2:
            break
    assert len(answers) == 2, f"only one worker ever answered {path}"
    return list(answers.values())


async def test_known_traffic_through_two_workers_is_counted_exactly(
    settings: Settings, app: Any
) -> None:
    admin, sre = await new_key(app), await new_key(app, "sre")
    sent_item, sent_list = 200, 40  # 200: P50/P95/P99 fall on whole ranks (100, 190, 198)
    async with await make_client(app) as local:
        organization = await create_organization(local, admin)
    env = {**server_env(settings), "SRE_SNAPSHOT_INTERVAL_S": "0.2", "ACCESS_LOG": "false"}
    async with Server(env, workers=2) as server:
        client_ms: list[float] = []
        server_ms: list[float] = []
        # No keep-alive: connections, and so requests, spread over both workers.
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(
            base_url=server.base_url, headers=admin, limits=limits
        ) as http:
            for _ in range(sent_item):
                started = time.perf_counter()
                answer = await http.get(f"/api/v1/organizations/{organization['id']}")
                client_ms.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200
                server_ms.append(_recorded_ms(answer))
            for _ in range(sent_list):
                assert (await http.get("/api/v1/organizations?limit=5")).status_code == 200
        await asyncio.sleep(1.0)  # several publish intervals: every worker's file is current

        answers = await _from_both_workers(server.base_url, sre, f"{PERFORMANCE[0]}")
        views = []
        for body in answers:
            assert len(body["workers"]) == 2
            routes = {r["route"]: r for r in body["routes"]}
            item, listing = routes[f"GET {ITEM_ROUTE}"], routes["GET /api/v1/organizations"]
            for window in ("1m", "5m", "1h"):
                assert item["windows"][window]["count"] == sent_item
                assert listing["windows"][window]["count"] == sent_list
            views.append((item, listing))
        # The same answer from either worker.
        assert views[0] == views[1]
        one, two = await _from_both_workers(server.base_url, sre, "/api/v1/performance/cache/stats")
        assert one["kinds"] == two["kinds"]
        organizations = next(k for k in one["kinds"] if k["kind"] == "organizations")
        assert organizations["hits"] + organizations["stale"] + organizations["misses"] == sent_item

        # Percentiles against the client's list of what each request took on the server
        # (Server-Timing `route`, rounded to 0.1 ms), and its own wall clock. HdrHistogram
        # keeps 2 significant digits: a percentile is at most 1 % above the value it stands
        # for, never below it.
        item = views[0][0]["windows"]["5m"]
        for name, p in (("p50", 50), ("p95", 95), ("p99", 99)):
            expected = _percentile(server_ms, p)
            assert expected - 0.051 <= item[name] <= (expected + 0.05) * 1.01 + 0.001, (name, item)
            assert item[name] <= _percentile(client_ms, p) * 1.01, (name, item)

        async with httpx.AsyncClient(base_url=server.base_url, headers=sre) as http:
            scraped = (await http.get("/metrics")).text
        samples = _samples(scraped)
        count = "enterprise_http_request_duration_seconds_count"
        item_labels = {"route": ITEM_ROUTE, "method": "GET", "status_class": "2xx"}
        list_labels = {"route": "/api/v1/organizations", "method": "GET", "status_class": "2xx"}
        assert samples[(count, frozenset(item_labels.items()))] == sent_item
        assert samples[(count, frozenset(list_labels.items()))] == sent_list
        # Its buckets agree with the client's list of server durations (0.1 ms rounding).
        buckets = {
            float(dict(labels)["le"]): value
            for (name, labels), value in samples.items()
            if name == "enterprise_http_request_duration_seconds_bucket"
            and {k: v for k, v in labels if k != "le"} == item_labels
        }
        assert len(buckets) > 5
        for le, observed in buckets.items():
            edge_ms = le * 1000
            assert sum(v <= edge_ms - 0.05 for v in server_ms) <= observed, (le, observed)
            assert observed <= sum(v <= edge_ms + 0.05 for v in server_ms), (le, observed)


async def test_a_thousand_distinct_ids_add_no_series(settings: Settings, app: Any) -> None:
    admin, sre = await new_key(app), await new_key(app, "sre")
    # No slow-query explains: on a loaded machine one would add its own (bounded) series
    # mid-test, which says nothing about ids.
    env = {
        **server_env(settings),
        "DB_SLOW_QUERY_THRESHOLD": "600000",
        "SRE_SNAPSHOT_INTERVAL_S": "0.2",
    }
    async with Server(env, workers=2) as server:
        async with httpx.AsyncClient(base_url=server.base_url, headers=admin) as http:

            async def fetch(ids: list[str]) -> None:
                for document_id in ids:
                    answer = await http.get(f"/api/v1/organizations/{document_id}")
                    assert answer.status_code == 404

            async def scrape() -> str:
                return (await http.get("/metrics", headers=sre)).text

            count = "enterprise_http_request_duration_seconds_count"
            labels = frozenset(
                {"route": ITEM_ROUTE, "method": "GET", "status_class": "4xx"}.items()
            )

            async def scrape_until(not_found: int) -> str:
                # Each worker hands its durations over at its publish (every 0.2 s): wait for
                # all of them, however loaded the machine, and for the scrapes' own series.
                for _ in range(100):
                    text = await scrape()
                    samples = _samples(text)
                    scraped = any(
                        name == count and dict(series).get("route") == "/metrics"
                        for name, series in samples
                    )
                    if samples.get((count, labels)) == not_found and scraped:
                        return text
                    await asyncio.sleep(0.1)
                raise AssertionError(f"{not_found} 404s never reached /metrics")

            await fetch([str(ObjectId()) for _ in range(10)])  # the route's 4xx series exist
            await scrape()
            before = await scrape_until(10)
            ids = [str(ObjectId()) for _ in range(1000)]
            await asyncio.gather(*(fetch(ids[i::10]) for i in range(10)))
            after = await scrape_until(1010)
    series_before, series_after = set(_samples(before)), set(_samples(after))
    assert series_after == series_before, series_after ^ series_before
    assert not any(document_id in after for document_id in ids)
