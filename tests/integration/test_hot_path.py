"""The hot path (middleware/hot_path.py, enterprise/hot.py) on the real stack: hits and 304s
answered before Falcon runs, with every header the full stack sends, stored compressed forms,
tenant scoping, freshness after writes, budgets, and refresh ahead of expiry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio
from pymongo import AsyncMongoClient

from enterprise.app import create_app
from enterprise.settings import Settings
from tests.conftest import REDIS_URL, make_client, new_key

pytestmark = pytest.mark.integration
ADDRESS = {"line1": "1 Main St", "city": "Austin", "state": "TX", "postalCode": "78701"}


def _settings(settings: Settings, **changes: Any) -> Settings:
    # A lease long enough that back-to-back requests of a loaded machine stay inside it
    # (each write then waits it out: this module writes little).
    return settings.with_overrides(cache_generation_lease_ms=1000, cache_ttl_jitter=0.0, **changes)


async def _organization(
    client: httpx.AsyncClient, admin: dict[str, str], clinics: int, name: str = "Hot Dental"
) -> str:
    org = (await client.post("/api/v1/organizations", json={"name": name}, headers=admin)).json()
    for index in range(clinics):
        answer = await client.post(
            f"/api/v1/organizations/{org['id']}/clinics",
            json={"name": f"Clinic {index:02d} of the hot path", "code": f"H{index}",
                  "address": ADDRESS},
            headers=admin,
        )  # fmt: skip
        assert answer.status_code == 201
    return str(org["id"])


async def _warm(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> httpx.Response:
    """The miss, then one more GET: generations first created by the miss are read back
    (and leased) by the second request."""
    miss = await client.get(url, headers=headers)
    assert miss.headers["x-cache"] == "miss"
    await client.get(url, headers=headers)
    return miss


async def _hot(app: Any, client: httpx.AsyncClient, url: str, **kwargs: Any) -> httpx.Response:
    """GET `url`, asserting it was answered by the hot path."""
    before = app.state.hot_path.answered
    answer = await client.get(url, **kwargs)
    assert app.state.hot_path.answered == before + 1, answer.headers
    return answer


async def test_a_hit_is_answered_before_falcon_with_the_full_stacks_headers(
    settings: Settings, mongo: AsyncMongoClient[Any], redis_client: Any
) -> None:
    app = create_app(_settings(settings), mongo=mongo, redis_client=redis_client)
    async with await make_client(app) as client:
        admin = await new_key(app)
        org = await _organization(client, admin, 1)
        url = f"/api/v1/organizations/{org}"
        full = await _warm(client, url, admin)  # the miss: the full stack
        hot = await _hot(app, client, url, headers={**admin, "X-Request-Id": "hot-1"})
    assert hot.status_code == 200
    assert hot.content == full.content
    for name in ("etag", "cache-control", "content-type", "vary"):
        assert hot.headers[name] == full.headers[name], name
    # Everything else the full stack sends (security headers …) the hot path sends too.
    volatile = {"x-request-id", "server-timing", "x-cache", "cache-status", "ratelimit"}
    for name in set(full.headers) - volatile:
        assert hot.headers.get(name) == full.headers[name], name
    assert hot.headers["x-cache"] == "hit"
    assert hot.headers["cache-status"].startswith("enterprise; hit; ttl=")
    assert hot.headers["x-request-id"] == "hot-1"
    timing = hot.headers["server-timing"]
    assert 'db;dur=0.0;desc="0 calls"' in timing
    assert "route;dur=" in timing
    budgets = {row["route"]: row for row in app.state.budgets.snapshot()}
    assert budgets["GET /api/v1/organizations/{organization_id}"]["windows"]["1m"]["count"] == 3


async def test_a_hit_sends_the_stored_form_the_client_accepts_and_never_compresses(
    settings: Settings, mongo: AsyncMongoClient[Any], redis_client: Any
) -> None:
    app = create_app(_settings(settings), mongo=mongo, redis_client=redis_client)
    async with await make_client(app) as client:
        admin = await new_key(app)
        org = await _organization(client, admin, 12)
        url = f"/api/v1/organizations/{org}/clinics?limit=20"
        # httpx asks for gzip, deflate and br unless told otherwise.
        identity = await _warm(client, url, {**admin, "Accept-Encoding": "identity"})
        assert "content-encoding" not in identity.headers
        assert len(identity.content) > 1024, "the page must be worth compressing"
        answers = {
            coding: await _hot(app, client, url, headers={**admin, "Accept-Encoding": accept})
            for coding, accept in (("br", "gzip, deflate, br"), ("gzip", "gzip;q=1, br;q=0.5"))
        }
        revalidated = await _hot(
            app, client, url, headers={**admin, "If-None-Match": answers["br"].headers["etag"]}
        )
    tag = identity.headers["etag"]
    for coding, answer in answers.items():
        assert answer.headers["content-encoding"] == coding
        assert answer.headers["etag"] == tag[:-1] + f'-{coding}"'
        assert answer.headers["vary"] == "Accept-Encoding"
        assert "compress" not in answer.headers["server-timing"]  # made when stored
        # httpx decodes br and gzip by Content-Encoding: the form decodes to the page.
        assert int(answer.headers["content-length"]) < len(identity.content)
        assert answer.content == identity.content
    assert revalidated.status_code == 304
    assert revalidated.headers["etag"] == answers["br"].headers["etag"]
    assert revalidated.content == b""


async def test_another_tenants_key_never_gets_a_hot_hit(
    settings: Settings, mongo: AsyncMongoClient[Any], redis_client: Any
) -> None:
    app = create_app(_settings(settings), mongo=mongo, redis_client=redis_client)
    async with await make_client(app) as client:
        admin = await new_key(app)
        mine = await _organization(client, admin, 0, "Mine Dental")
        theirs = await _organization(client, admin, 0, "Theirs Dental")
        reader = await new_key(app, "org_reader", mine)
        url = f"/api/v1/organizations/{theirs}"
        assert (await _warm(client, url, admin)).status_code == 200
        await _hot(app, client, url, headers=admin)
        answers = [await client.get(url, headers=reader) for _ in range(3)]
    assert {a.status_code for a in answers} == {404}
    assert all(a.headers["content-type"] == "application/problem+json" for a in answers)


async def test_a_write_is_seen_at_once_after_hot_hits(
    settings: Settings, mongo: AsyncMongoClient[Any], redis_client: Any
) -> None:
    app = create_app(_settings(settings), mongo=mongo, redis_client=redis_client)
    async with await make_client(app) as client:
        admin = await new_key(app)
        org = await _organization(client, admin, 0)
        url = f"/api/v1/organizations/{org}"
        etag = (await _warm(client, url, admin)).headers["etag"]
        await _hot(app, client, url, headers=admin)
        written = await client.patch(url, json={"name": "Renamed"}, headers=admin)
        assert written.status_code == 200
        after = await client.get(url, headers={**admin, "If-None-Match": etag})
    assert after.status_code == 200
    assert after.json()["name"] == "Renamed"


async def test_a_hit_late_in_its_ttl_is_refreshed_in_the_background(
    settings: Settings, mongo: AsyncMongoClient[Any], redis_client: Any
) -> None:
    # A hit at the very end of the TTL is past the refresh point, wherever it was drawn in
    # the TTL's last fraction. Entry ages run on a clock of the test's own, standing still
    # while the requests run: on the wall clock a loaded machine's pause after the refresh
    # could age the new entry into its refresh window too, and rightly start a second one.
    now = [1_000_000.0]
    app = create_app(
        _settings(settings, cache_ttl_organization=4, cache_refresh_ahead=0.9),
        mongo=mongo,
        redis_client=redis_client,
        cache_clock=lambda: now[0],
    )
    cache = app.state.cache
    async with await make_client(app) as client:
        admin = await new_key(app)
        org = await _organization(client, admin, 0)
        url = f"/api/v1/organizations/{org}"
        await _warm(client, url, admin)
        stores = cache.stats.stores
        now[0] += 4.0  # the TTL's last moment: still a hit, and due for its refresh
        answers = [await _hot(app, client, url, headers=admin) for _ in range(5)]
        for _ in range(200):  # the refresh runs beside the requests; wait for its store
            if cache.stats.stores > stores:
                break
            await asyncio.sleep(0.02)
        refreshes = app.state.hot_path.refreshes
        after = await _hot(app, client, url, headers=admin)
    assert {a.headers["x-cache"] for a in answers} == {"hit"}  # nobody waited for it
    assert cache.stats.stores == stores + 1
    assert refreshes == 1  # one refresh per key at a time; the hits after it are fresh
    # The refreshed entry is new: its age starts again.
    assert after.headers["cache-status"].endswith("ttl=4")
    assert app.state.hot_path.refreshes == refreshes


async def test_a_key_refreshed_by_one_worker_is_taken_by_the_others_not_recomputed(
    settings: Settings, mongo: AsyncMongoClient[Any], redis_client: Any
) -> None:
    """Two workers (two apps on one Redis) hold the same entry and both come to refresh it:
    the first recomputes and stores it in Redis, the second takes that newer entry instead
    of asking the database again, and serves it as fresh."""
    now = [1_000_000.0]
    tuned = _settings(settings, cache_ttl_organization=4, cache_refresh_ahead=0.9)
    first, second = (
        create_app(tuned, mongo=mongo, redis_client=redis_client, cache_clock=lambda: now[0])
        for _ in range(2)
    )
    async with await make_client(first) as one, await make_client(second) as two:
        admin = await new_key(first)
        url = f"/api/v1/organizations/{await _organization(one, admin, 0)}"
        await _warm(one, url, admin)
        held = await two.get(url, headers=admin)  # the second worker's copy, from Redis
        assert held.headers["x-cache"] == "hit"
        await _hot(second, two, url, headers=admin)
        stores = [first.state.cache.stats.stores, second.state.cache.stats.stores]
        now[0] += 4.0  # both copies are due for their refresh now (the TTL's last moment)
        await _hot(first, one, url, headers=admin)
        await first.state.hot_path.aclose()  # its refresh has run and stored the new entry
        assert first.state.cache.stats.stores == stores[0] + 1
        await _hot(second, two, url, headers=admin)
        await second.state.hot_path.aclose()
        after = await _hot(second, two, url, headers=admin)
        assert second.state.hot_path.refreshes == 1
        # Taken, not recomputed: a recomputed answer is always stored.
        assert second.state.cache.stats.stores == stores[1]
    assert after.headers["x-cache"] == "hit"
    assert after.headers["cache-status"].endswith("ttl=4")  # the first worker's new entry


@pytest.fixture
async def patient_redis(stack: None) -> AsyncIterator[redis.asyncio.Redis]:
    """A Redis client that waits for its answers. The app's own 0.25 s socket timeout is a
    fail-fast promise (tested with the breakers); a test that counts exactly what 40
    concurrent requests per step did must not turn into a test of how long a loaded CI
    machine stalls this process's event loop (one such stall timed a call out and the
    refreshes counted 19, not 40)."""
    client = redis.asyncio.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
    yield client
    await client.aclose()


async def test_workers_holding_the_same_entries_recompute_each_once_not_each_of_them(
    settings: Settings, mongo: AsyncMongoClient[Any], patient_redis: Any
) -> None:
    """Every worker holds its own copy of an entry and refreshes it ahead of expiry. Each
    draws its own refresh point at random in the TTL's last fraction, so for almost every
    key one worker comes to it first and recomputes it, and the other, later, takes that
    newer entry from Redis. At one fixed point both came to each key together, both found
    nothing newer in Redis, and both asked the database: 40 recomputations here, not 20."""
    now = [1_000_000.0]
    tuned = _settings(
        settings, cache_ttl_list=4, cache_refresh_ahead=0.5, cache_refresh_concurrency=20
    )
    first, second = (
        create_app(tuned, mongo=mongo, redis_client=patient_redis, cache_clock=lambda: now[0])
        for _ in range(2)
    )
    async with await make_client(first) as one, await make_client(second) as two:
        admin = await new_key(first)
        await _organization(one, admin, 0)
        urls = [f"/api/v1/organizations?limit={n}" for n in range(1, 21)]  # 20 keys
        for url in urls:
            await _warm(one, url, admin)
            await two.get(url, headers=admin)  # the second worker's copy, from Redis
        stores = first.state.cache.stats.stores + second.state.cache.stats.stores
        now[0] += 2.0  # the refresh window (the TTL's second half) begins
        for _ in range(20):  # through it, 0.1 s a step, both workers read every key at once
            now[0] += 0.1
            answers = await asyncio.gather(
                *(client.get(url, headers=admin) for client in (one, two) for url in urls)
            )
            assert {a.status_code for a in answers} == {200}
            await first.state.hot_path.aclose()  # the refreshes started in this step end
            await second.state.hot_path.aclose()
        recomputed = first.state.cache.stats.stores + second.state.cache.stats.stores - stores
        refreshes = first.state.hot_path.refreshes + second.state.hot_path.refreshes
    assert refreshes == 40  # each worker refreshed each key once
    # Once per key, and a second time only for a key whose two points fell in the same
    # step (1 chance in 20 per key: 9 or more of 20 has odds below one in a million).
    assert 20 <= recomputed <= 28, recomputed


async def test_live_is_answered_before_falcon_as_falcon_answers_it(app: Any) -> None:
    async with await make_client(app) as client:
        before = app.state.hot_path.answered
        hot = await client.get("/health/live")
        assert app.state.hot_path.answered == before + 1
        full = await client.get("/health/live?via=app")  # a query string: the app answers
        assert app.state.hot_path.answered == before + 1
    assert hot.content == full.content == b'{"status":"ok"}'
    for name in ("content-type", "cache-control", "vary"):
        assert hot.headers[name] == full.headers[name], name
    assert "x-cache" not in hot.headers
    assert "cache-status" not in hot.headers
    assert "route;dur=" in hot.headers["server-timing"]
    assert hot.headers["x-request-id"]
    routes = {row["route"] for row in app.state.budgets.snapshot()}
    assert "GET /health/live" in routes


async def test_hot_hits_spend_the_rate_limit_and_the_app_refuses_past_it(
    database: str, mongo: AsyncMongoClient[Any], redis_client: Any
) -> None:
    from tests.conftest import settings_for

    limited = settings_for(database, RATE_LIMITS="*:*:GET=6/3600,*:*:*=50/3600")
    app = create_app(_settings(limited), mongo=mongo, redis_client=redis_client)
    async with await make_client(app) as client:
        admin = await new_key(app)
        org = await _organization(client, admin, 0)
        url = f"/api/v1/organizations/{org}"
        await _warm(client, url, admin)  # 2 of 6
        hot = [await _hot(app, client, url, headers=admin) for _ in range(4)]
        refused = await client.get(url, headers=admin)
    remaining = [a.headers["ratelimit"].split(";")[1] for a in hot]
    assert remaining == ["r=3", "r=2", "r=1", "r=0"]
    assert {a.headers["ratelimit-policy"] for a in hot} == {'"default";q=6;w=3600'}
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
