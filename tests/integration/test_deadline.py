"""A query that cannot finish within its route's deadline answers 504 in time."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId

from enterprise.app import create_app, driver_share
from enterprise.settings import Settings
from tests.conftest import make_client, new_key

pytestmark = pytest.mark.integration


async def test_search_past_its_deadline_gets_504(
    settings: Settings, mongo: Any, redis_client: Any
) -> None:
    db = mongo[settings.mongodb_database]
    organization = ObjectId()
    now = datetime.now(UTC)
    await db.clinics.insert_many(
        [
            {
                "organizationId": organization,
                "name": f"Clinic {i}",
                "nameKey": f"clinic {i}",
                "code": f"C{i}",
                "status": "ACTIVE",
                "address": {"line1": "x", "city": "Austin", "state": "TX", "postalCode": "78701"},
                "createdAt": now,
                "updatedAt": now,
                "version": 1,
            }
            for i in range(20_000)
        ],
        ordered=False,
    )
    # First measure the query with a generous deadline, then give the route a quarter of
    # that: whatever the server (FerretDB v1 scans, MongoDB and FerretDB v2 use
    # clinics_city_name), the exact count of 20,000 matches cannot finish within its route's
    # timeout. (A city that matches nothing is answered from the index in a few ms on the
    # latter, and a quarter of that expires before the request reaches its route.)
    url = "/api/v1/clinics/search?city=Austin&count=exact"
    patient = create_app(
        settings.with_overrides(timeout_search=120.0, cache_enabled=False),
        mongo=mongo,
        redis_client=redis_client,
    )
    async with await make_client(patient) as client:
        admin = await new_key(patient)
        await client.get(url, headers=admin)  # warm: key lookup, connections
        started = time.perf_counter()
        answer = await client.get(url, headers=admin)
        needed = time.perf_counter() - started
    assert answer.status_code == 200, answer.text
    deadline = needed / 4
    hurried = create_app(
        settings.with_overrides(timeout_search=deadline, cache_enabled=False),
        mongo=mongo,
        redis_client=redis_client,
    )
    async with await make_client(hurried) as client:
        # The key known to this app before the measured request: else its lookup runs under
        # the search's short deadline and the 504 comes before the route (seen in a CI run).
        assert (await client.get("/api/v1/organizations?limit=1", headers=admin)).is_success
        started = time.perf_counter()
        answer = await client.get(url, headers=admin)
        elapsed = time.perf_counter() - started
    assert answer.status_code == 504, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["status"] == 504
    assert elapsed <= deadline + 0.1
    # The request is counted, whether the driver or the outer deadline ended it: budgets (as
    # an error), metrics (5xx), and the Server-Timing `route` figure those recorded.
    [search] = [
        row
        for row in hurried.state.budgets.snapshot()
        if row["route"] == "GET /api/v1/clinics/search"
    ]
    assert (search["windows"]["1m"]["count"], search["windows"]["1m"]["errors"]) == (1, 1)
    # The driver's share of the deadline ran out first (or the outer cancel came).
    assert search["windows"]["1m"]["max"] >= driver_share(deadline) * 1000 * 0.9
    hurried.state.telemetry.sync_metrics()  # as /metrics does before its exposition
    exposition = hurried.state.metrics.exposition().decode()
    assert (
        'enterprise_http_request_duration_seconds_count{method="GET",'
        'route="/api/v1/clinics/search",status_class="5xx"} 1.0'
    ) in exposition


async def test_bounded_count_past_its_time_limit_reports_unknown(
    settings: Settings, mongo: Any, redis_client: Any
) -> None:
    db = mongo[settings.mongodb_database]
    organization = ObjectId()
    now = datetime.now(UTC)
    address = {"line1": "x", "city": "Austin", "state": "TX", "postalCode": "78701"}
    await db.clinics.insert_many(
        [
            {"organizationId": organization, "name": f"Clinic {i}", "nameKey": f"clinic {i:05d}",
             "code": f"C{i}", "status": "ACTIVE", "address": address,
             "createdAt": now, "updatedAt": now, "version": 1}
            for i in range(20_000)
        ],
        ordered=False,
    )  # fmt: skip
    app = create_app(
        settings.with_overrides(count_max_time_ms=1, cache_enabled=False),
        mongo=mongo,
        redis_client=redis_client,
    )
    async with await make_client(app) as client:
        admin = await new_key(app)
        answer = await client.get(
            f"/api/v1/clinics?organizationId={organization}&limit=5&count=estimated", headers=admin
        )
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["data"]) == 5
    assert answer.json()["count"] == {"value": None, "strategy": "estimated", "exact": False}
    assert "x-total-count" not in answer.headers
