"""Response cache behaviour on the real stack: single flight, stale-while-revalidate,
O(1) generation invalidation, and the timing headers every response carries."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient, monitoring

from enterprise.app import create_app
from enterprise.settings import Settings
from tests.conftest import MONGODB_URI, make_client, new_key

pytestmark = pytest.mark.integration
ADDRESS = {"line1": "1 Main St", "city": "Austin", "state": "TX", "postalCode": "78701"}


class Finds(monitoring.CommandListener):
    def __init__(self) -> None:
        self.collections: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.collections.append(str(event.command["find"]))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None: ...

    def failed(self, event: monitoring.CommandFailedEvent) -> None: ...


async def _clinic(client: httpx.AsyncClient, admin: dict[str, str]) -> str:
    org = (
        await client.post("/api/v1/organizations", json={"name": "Cache Dental"}, headers=admin)
    ).json()
    answer = await client.post(
        f"/api/v1/organizations/{org['id']}/clinics",
        json={"name": "Main", "code": "M1", "address": ADDRESS},
        headers=admin,
    )
    return str(answer.json()["id"])


async def test_single_flight_one_database_read_for_many_concurrent_misses(
    settings: Settings, redis_client: Any
) -> None:
    finds = Finds()
    mongo: AsyncMongoClient[Any] = AsyncMongoClient(
        MONGODB_URI, tz_aware=True, event_listeners=[finds]
    )
    app = create_app(settings, mongo=mongo, redis_client=redis_client)
    try:
        async with await make_client(app) as client:
            admin = await new_key(app)
            clinic = await _clinic(client, admin)
            await client.get("/health/live", headers=admin)
            finds.collections.clear()
            answers = await asyncio.gather(
                *(client.get(f"/api/v1/clinics/{clinic}", headers=admin) for _ in range(20))
            )
    finally:
        await mongo.close()
    assert {a.status_code for a in answers} == {200}
    assert finds.collections.count("clinics") == 1
    assert sorted(a.headers["x-cache"] for a in answers).count("miss") == 1


async def test_stale_entry_is_served_while_one_request_refreshes(
    settings: Settings, mongo: Any, redis_client: Any
) -> None:
    app = create_app(
        settings.with_overrides(cache_ttl_clinic=0, cache_stale_seconds=60),
        mongo=mongo,
        redis_client=redis_client,
    )
    async with await make_client(app) as client:
        admin = await new_key(app)
        clinic = await _clinic(client, admin)
        first = await client.get(f"/api/v1/clinics/{clinic}", headers=admin)
        assert first.headers["x-cache"] == "miss"
        answers = await asyncio.gather(
            *(client.get(f"/api/v1/clinics/{clinic}", headers=admin) for _ in range(10))
        )
    states = [a.headers["x-cache"] for a in answers]
    assert states.count("miss") == 1  # the one refresher
    assert "stale" in states
    assert {a.json()["name"] for a in answers} == {"Main"}
    assert app.state.cache.snapshot()["stale"] >= 1


async def test_write_invalidates_by_generation_without_scanning(
    client: httpx.AsyncClient, admin: dict[str, str], redis_client: Any, settings: Settings
) -> None:
    clinic = await _clinic(client, admin)
    url = f"/api/v1/clinics/{clinic}"
    await client.get(url, headers=admin)
    assert (await client.get(url, headers=admin)).headers["x-cache"] == "hit"
    generation = f"gen:{settings.mongodb_database}:clinics#{clinic}"
    before = int(await redis_client.get(generation))
    assert (await client.patch(url, json={"name": "Renamed"}, headers=admin)).status_code == 200
    assert int(await redis_client.get(generation)) == before + 1
    after = await client.get(url, headers=admin)
    assert (after.headers["x-cache"], after.json()["name"]) == ("miss", "Renamed")


async def test_every_response_carries_request_id_and_server_timing(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    clinic = await _clinic(client, admin)
    for answer in (
        await client.get(
            f"/api/v1/clinics/{clinic}", headers={**admin, "X-Request-Id": "trace-123"}
        ),
        await client.get("/api/v1/clinics/not-an-id", headers=admin),
        await client.get("/health/live"),
    ):
        assert answer.headers["x-request-id"]
        timing = answer.headers["server-timing"]
        for metric in ("app;dur=", "db;dur=", "cache;dur="):
            assert metric in timing
    traced = await client.get(
        f"/api/v1/clinics/{clinic}?fields=name", headers={**admin, "X-Request-Id": "trace-123"}
    )
    assert traced.headers["x-request-id"] == "trace-123"


async def test_budgets_track_route_templates(
    app: Any, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    clinic = await _clinic(client, admin)
    for _ in range(3):
        await client.get(f"/api/v1/clinics/{clinic}", headers=admin)
    routes = {row["route"]: row for row in app.state.budgets.snapshot()}
    row = routes["GET /api/v1/clinics/{clinic_id}"]
    assert row["class"] == "clinics"
    assert row["target_ms"] == 150.0
    assert row["windows"]["1m"]["count"] == 3
