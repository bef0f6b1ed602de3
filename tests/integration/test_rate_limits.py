"""Rate limits per key × route class × method on the real stack: headers on every limited
answer (cache hits and 304s included), 429 problem+json, exemptions, and exact counts across
two server workers sharing Redis."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pybreaker
import pytest
import redis.asyncio
from pymongo import AsyncMongoClient

from enterprise.app import create_app
from enterprise.capabilities import ServerCapabilities
from enterprise.ratelimit import LATER, RateLimiter, Rules
from enterprise.settings import Settings
from tests.conftest import Server, make_client, new_key, server_env, settings_for

pytestmark = pytest.mark.integration
API = "/api/v1"
PROBLEM = "application/problem+json"


@pytest.fixture
def limited(database: str) -> Settings:
    return settings_for(
        database, RATE_LIMITS="*:*:GET=5/3600,*:*:PATCH=2/3600,*:*:*=50/3600,sre:*:*=3/3600"
    )


@pytest.fixture
async def limited_app(
    limited: Settings,
    mongo: AsyncMongoClient[Any],
    redis_client: redis.asyncio.Redis,
    capabilities: ServerCapabilities,
) -> Any:
    return create_app(limited, mongo=mongo, redis_client=redis_client, capabilities=capabilities)


@pytest.fixture
async def limited_client(limited_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with await make_client(limited_app) as http:
        yield http


async def _organization(client: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, Any]:
    answer = await client.post(f"{API}/organizations", json={"name": "Limits"}, headers=admin)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def test_quota_is_spent_by_hits_and_304s_then_429(
    limited_app: Any, limited_client: httpx.AsyncClient
) -> None:
    admin = await new_key(limited_app)
    org = await _organization(limited_client, admin)
    url = f"{API}/organizations/{org['id']}"
    first = await limited_client.get(url, headers=admin)
    assert first.headers["ratelimit-policy"] == '"default";q=5;w=3600'
    assert first.headers["ratelimit"].startswith('"default";r=4;t=')
    states = [first.headers["x-cache"]]
    for remaining in (3, 2, 1):
        answer = await limited_client.get(url, headers=admin)
        assert answer.status_code == 200
        assert answer.headers["ratelimit"].startswith(f'"default";r={remaining};')
        states.append(answer.headers["x-cache"])
    assert "hit" in states  # cache hits are counted like any answer
    revalidated = await limited_client.get(
        url, headers={**admin, "If-None-Match": first.headers["etag"]}
    )
    assert revalidated.status_code == 304
    assert revalidated.headers["ratelimit"].startswith('"default";r=0;')

    refused = await limited_client.get(url, headers=admin)
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith(PROBLEM)
    assert refused.json()["status"] == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit"].startswith('"default";r=0;')
    assert refused.headers["ratelimit-policy"] == '"default";q=5;w=3600'
    assert refused.headers["cache-control"] == "no-store"


async def test_buckets_are_per_key_route_class_and_method(
    limited_app: Any, limited_client: httpx.AsyncClient
) -> None:
    admin = await new_key(limited_app)
    org = await _organization(limited_client, admin)
    item, listing = f"{API}/organizations/{org['id']}", f"{API}/organizations"
    for _ in range(5):
        assert (await limited_client.get(item, headers=admin)).status_code == 200
    assert (await limited_client.get(item, headers=admin)).status_code == 429
    # Another route class (lists), another method (PATCH), another key: their own quotas.
    assert (await limited_client.get(listing, headers=admin)).status_code == 200
    patched = await limited_client.patch(item, json={"name": "Limits 2"}, headers=admin)
    assert patched.status_code == 200, patched.text
    assert patched.headers["ratelimit-policy"] == '"default";q=2;w=3600'
    other = await new_key(limited_app)
    assert (await limited_client.get(item, headers=other)).status_code == 200


async def test_role_rules_apply_and_health_is_exempt(
    limited_app: Any, limited_client: httpx.AsyncClient
) -> None:
    sre = await new_key(limited_app, "sre")
    for _ in range(3):
        answer = await limited_client.get(f"{API}/performance/cache/stats", headers=sre)
        assert answer.status_code == 200, answer.text
    assert (
        await limited_client.get(f"{API}/performance/cache/stats", headers=sre)
    ).status_code == 429
    for _ in range(10):  # monitoring never runs out, key or not
        ready = await limited_client.get("/health/ready", headers=sre)
        assert ready.status_code == 200
        assert "ratelimit" not in ready.headers
        assert (await limited_client.get("/health/live")).status_code == 200


async def test_limits_are_exact_across_two_workers(settings: Settings, app: Any) -> None:
    """60 concurrent GETs of one item through a real 2-worker server: exactly the quota (20)
    is admitted, whichever worker answers; the window (1 h) outlasts any slow machine."""
    admin = await new_key(app)
    async with await make_client(app) as client:
        org = await _organization(client, admin)
    env = {
        **server_env(settings),
        "RATE_LIMITS": "*:*:GET=20/3600,*:*:*=100/3600",
        # Redis is up throughout: a reply slowed past 0.25 s by this shared machine's load
        # must not count as an outage (that would hand the decision to the fallback).
        "REDIS_SOCKET_TIMEOUT_S": "5",
    }
    async with Server(env, workers=2) as server:
        limits = httpx.Limits(max_connections=60)
        async with httpx.AsyncClient(
            base_url=server.base_url, headers=admin, limits=limits, timeout=30
        ) as http:
            answers = await asyncio.gather(
                *(http.get(f"{API}/organizations/{org['id']}") for _ in range(60))
            )
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {200: 20, 429: 40}, statuses
    remaining = sorted(
        int(a.headers["ratelimit"].split(";r=")[1].split(";")[0])
        for a in answers
        if a.status_code == 200
    )
    assert remaining == list(range(20))  # each admitted request saw its own place in line


async def test_far_from_the_limit_a_worker_reserves_blocks_and_gives_back_the_rest(
    database: str,
    mongo: AsyncMongoClient[Any],
    redis_client: redis.asyncio.Redis,
    capabilities: ServerCapabilities,
) -> None:
    settings = settings_for(database, RATE_LIMITS="*:*:*=10000/864000", RATE_LIMIT_LEASE_MS="300")
    app = create_app(settings, mongo=mongo, redis_client=redis_client, capabilities=capabilities)
    async with await make_client(app) as client:
        admin = await new_key(app)
        org = await _organization(client, admin)
        url = f"{API}/organizations/{org['id']}"
        limiter = app.state.limiter
        calls = limiter.calls
        seen = [
            int(
                (await client.get(url, headers=admin))
                .headers["ratelimit"]
                .split(";r=")[1]
                .split(";")[0]
            )
            for _ in range(100)
        ]
        # One worker: its count is exact (a unit refills every 86 s: none during the test).
        assert seen == list(range(9999, 9899, -1))
        assert limiter.calls - calls <= 12  # blocks of 1, 2, 4 … 64, not 100 round trips
        await asyncio.sleep(0.6)  # the lease ends: unused units go back to the bucket
        after = await client.get(url, headers=admin)
        assert after.headers["ratelimit"].startswith('"default";r=9899;')


async def test_a_busy_key_finds_credit_while_its_next_block_is_reserved(
    database: str, redis_client: redis.asyncio.Redis
) -> None:
    """16 callers of one key, each pausing 1 ms between requests (about the pace of a busy
    worker's connections: 16,000 requests a second at most): once the block has grown (1, 2,
    4 … 256; everyone waits for those), the next one is reserved before the credit runs out,
    so nearly every request is admitted in place (`admit_now`, no await); and the count stays
    exact: the 3,200 admitted requests saw 3,200 distinct places in line, the first 3,200 of
    the quota. (Without reservations ahead all 16 wait at the end of every block: about 100 in
    the second half. With no pause at all a busy CI machine's Redis round trip can outlast
    a block: 80 waited once.)"""
    limit = 100_000
    limiter = RateLimiter(
        redis_client,
        pybreaker.CircuitBreaker(),
        Rules.parse(f"*:*:*={limit}/864000"),
        local_share=1.0,
        lease_s=5,
        max_block=256,  # 3,200 requests then span a dozen blocks (1,024: only 4)
        namespace=f"{database}-ahead",
    )
    awaited = [0, 0]  # requests that had to await `allow`, in each half of the run
    seen: list[int] = []

    async def caller() -> None:
        for i in range(200):
            fields = limiter.admit_now("key", "platform_admin", "items", "GET")
            if fields is LATER:
                awaited[i // 100] += 1
                decision = await limiter.allow("key", "platform_admin", "items", "GET")
                assert decision is not None
                assert decision.allowed
                seen.append(decision.remaining)
            else:
                value = dict(fields)[b"ratelimit"].decode()
                seen.append(int(value.split(";r=")[1].split(";")[0]))
            await asyncio.sleep(0.001)

    try:
        await asyncio.gather(*(caller() for _ in range(16)))
    finally:
        await limiter.aclose()
    assert sorted(seen) == list(range(limit - 3_200, limit))
    assert limiter.calls <= 40  # blocks of 1, 2 … 256: not one round trip per request
    assert awaited[1] <= 1_600 * 0.02, awaited  # once the blocks have grown


async def test_a_background_refresh_spends_none_of_the_keys_quota(
    settings: Settings, mongo: AsyncMongoClient[Any], redis_client: redis.asyncio.Redis
) -> None:
    # The hot path replays a GET late in its TTL with the client's credentials; the client
    # did not send that request, so its quota must not pay for it (nor refuse it). Entry ages
    # run on the test's own clock (test_hot_path.py says why).
    now = [1_000_000.0]
    app = create_app(
        settings.with_overrides(
            rate_limits="*:*:GET=6/3600,*:*:*=50/3600",
            cache_ttl_organization=4,
            cache_refresh_ahead=0.9,
            cache_generation_lease_ms=1000,
            cache_ttl_jitter=0.0,
        ),
        mongo=mongo,
        redis_client=redis_client,
        cache_clock=lambda: now[0],
    )
    cache = app.state.cache
    async with await make_client(app) as client:
        admin = await new_key(app)
        org = await _organization(client, admin)
        url = f"{API}/organizations/{org['id']}"
        for remaining in (5, 4):  # the miss, then the read that leases its generations
            answer = await client.get(url, headers=admin)
            assert answer.headers["ratelimit"].startswith(f'"default";r={remaining};')
        stores, refreshes = cache.stats.stores, app.state.hot_path.refreshes
        now[0] += 4.0  # the TTL's last moment: a hit asks for a refresh
        late = await client.get(url, headers=admin)
        assert late.headers["x-cache"] == "hit"
        assert late.headers["ratelimit"].startswith('"default";r=3;')
        for _ in range(200):  # the refresh runs beside the requests; wait for its store
            if cache.stats.stores > stores:
                break
            await asyncio.sleep(0.02)
        assert app.state.hot_path.refreshes == refreshes + 1
        assert cache.stats.stores == stores + 1
        after = await client.get(url, headers=admin)
    assert after.headers["ratelimit"].startswith('"default";r=2;'), after.headers["ratelimit"]
