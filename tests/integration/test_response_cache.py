"""Response cache behaviour on the real stack: single flight, stale-while-revalidate,
O(1) generation invalidation, and the timing headers every response carries."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import falcon.asgi
import falcon.testing
import httpx
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient, monitoring

from enterprise.app import create_app
from enterprise.auth import Principal, Role
from enterprise.breakers import make_breaker
from enterprise.cache import ResponseCache
from enterprise.cache_targets import CacheTarget, CacheTargets
from enterprise.settings import Settings
from middleware.response_cache import ResponseCacheMiddleware
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


class SlowResource:
    """Takes 100 ms per response, so concurrent requests overlap its refresh."""

    def __init__(self) -> None:
        self.calls = 0

    async def on_get(self, req: Any, resp: Any) -> None:
        self.calls += 1
        await asyncio.sleep(0.1)
        resp.data = f'{{"call": {self.calls}}}'.encode()


@asynccontextmanager
async def slow_cached(
    redis: Any, *, ttl: float, stale_seconds: float = 30.0, clock: Any = time.time
) -> AsyncIterator[tuple[httpx.AsyncClient, SlowResource]]:
    """`SlowResource` at /slow behind the response cache alone, with one cache target."""
    name = uuid.uuid4().hex[:8]
    cache = ResponseCache(
        redis,
        make_breaker(f"redis-test-{name}", failure_threshold=5, reset_timeout=5),
        stale_seconds=stale_seconds,
        namespace=f"slow_{name}",
        clock=clock,
    )
    target = CacheTarget(key=f"r:slow-{uuid.uuid4().hex}", ttl=ttl, list_etag=None)

    async def describe(req: Any, resource: object, params: dict[str, Any]) -> CacheTarget:
        return target

    resource = SlowResource()
    app = falcon.asgi.App(middleware=[ResponseCacheMiddleware(cache, describe)])
    app.add_route("/slow", resource)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client, resource


async def test_stale_entry_is_served_while_one_request_refreshes(redis_client: Any) -> None:
    # Entry ages on a clock of the test's own: a loaded machine's pause cannot age the
    # refreshed entry past its 0.5 s TTL before the last GET.
    now = [1_000_000.0]
    with_clock = slow_cached(redis_client, ttl=0.5, stale_seconds=60, clock=lambda: now[0])
    async with with_clock as (client, resource):
        first = await client.get("/slow")
        assert (first.headers["x-cache"], first.json()) == ("miss", {"call": 1})
        now[0] += 0.6  # past the TTL, inside the stale window
        answers = await asyncio.gather(*(client.get("/slow") for _ in range(10)))
        states = sorted(a.headers["x-cache"] for a in answers)
        assert states == ["miss"] + ["stale"] * 9  # one refresher, nine served at once
        assert resource.calls == 2
        assert {a.json()["call"] for a in answers if a.headers["x-cache"] == "stale"} == {1}
        refreshed = await client.get("/slow")
        assert (refreshed.headers["x-cache"], refreshed.json()) == ("hit", {"call": 2})


class RedisReadsThatReturnLate:
    """The real Redis client, except that a GET's answer is held back while `hold` is set:
    the read happens in Redis at once, its answer reaches the app only later."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis
        self.hold: asyncio.Event | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._redis, name)

    async def get(self, key: str) -> Any:
        value = await self._redis.get(key)
        if self.hold is not None:
            await self.hold.wait()
        return value


async def test_a_miss_that_read_redis_while_the_leader_finished_computes_nothing(
    redis_client: Any,
) -> None:
    redis = RedisReadsThatReturnLate(redis_client)
    async with slow_cached(redis, ttl=30) as (client, resource):
        leader = asyncio.create_task(client.get("/slow"))
        await asyncio.sleep(0.05)  # the leader is computing (100 ms)
        redis.hold = asyncio.Event()
        late = asyncio.create_task(client.get("/slow"))  # reads Redis now: nothing there yet
        assert (await leader).headers["x-cache"] == "miss"  # stored and finished
        redis.hold.set()  # the late request learns "not in Redis" only now
        answer = await late
    assert resource.calls == 1
    assert (answer.headers["x-cache"], answer.json()) == ("hit", {"call": 1})


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


class Item:
    policies = 0

    def cache_policy(self, req: Any, params: dict[str, Any]) -> tuple[list[str], float, bool]:
        self.policies += 1
        return [f"things#{params['id']}"], 60.0, False


async def test_remembered_targets_follow_writes_stay_bounded_and_never_cross_scopes(
    redis_client: Any,
) -> None:
    name = uuid.uuid4().hex[:8]
    cache = ResponseCache(
        redis_client,
        make_breaker(f"redis-test-{name}", failure_threshold=5, reset_timeout=5),
        namespace=f"targets_{name}",
        generation_lease_s=0.02,
    )
    targets = CacheTargets(cache, max_remembered=2)
    resource = Item()
    platform = Principal("k1", "admin", Role.PLATFORM_ADMIN, None)
    reader = Principal("k2", "reader", Role.ORG_READER, ObjectId())

    async def target(thing: str, principal: Principal = platform) -> CacheTarget:
        req = falcon.testing.create_asgi_req(path=f"/things/{thing}")
        req.context.principal = principal
        found = await targets.describe(req, resource, {"id": thing})
        assert found is not None
        assert await targets.describe(req, resource, {"id": thing}) is found  # per request
        return found

    first = await target("a")
    assert await target("a") == first
    assert resource.policies == 1  # remembered: no second policy call, no hashing
    assert (await target("a", reader)).key != first.key  # another scope, another key

    await cache.bump(["things#a"])
    after_write = await target("a")
    assert after_write.key != first.key
    assert await target("a") == after_write

    await target("b")  # a third route: the memory of two starts over
    await target("c")
    assert await target("a") == after_write  # forgotten, recomputed: the same target
    assert resource.policies == 5
