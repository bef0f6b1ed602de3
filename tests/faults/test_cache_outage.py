"""Redis stopped during traffic: no client errors, the in-process tier carries on, hits
come back after the restart, and the stated cross-worker freshness holds."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx
import pytest
import redis.asyncio

from enterprise.app import create_app
from enterprise.settings import Settings
from tests.conftest import make_client, new_key
from tests.faults.conftest import FaultStack

pytestmark = pytest.mark.faults
ADDRESS = {"line1": "1 Main St", "city": "Austin", "state": "TX", "postalCode": "78701"}


async def _seed(client: httpx.AsyncClient, admin: dict[str, str]) -> tuple[str, list[str]]:
    org = (
        await client.post("/api/v1/organizations", json={"name": "Outage Dental"}, headers=admin)
    ).json()
    clinics = []
    for index in range(5):
        answer = await client.post(
            f"/api/v1/organizations/{org['id']}/clinics",
            json={"name": f"Clinic {index}", "code": f"C{index}", "address": ADDRESS},
            headers=admin,
        )
        clinics.append(answer.json()["id"])
    return org["id"], clinics


async def test_redis_stopped_mid_run_gives_zero_client_errors(
    fault_settings: Settings, restore: FaultStack
) -> None:
    app = create_app(fault_settings)
    async with await make_client(app) as client:
        admin = await new_key(app)
        org, clinics = await _seed(client, admin)
        statuses: Counter[int] = Counter()
        cache_states: list[tuple[float, str]] = []
        started = time.monotonic()

        async def traffic(worker: int) -> None:
            step = 0
            while time.monotonic() - started < 7:
                step += 1
                if step % 10 == 0:
                    url = f"/api/v1/clinics/{clinics[worker]}"
                    answer = await client.patch(
                        url, json={"name": f"Clinic {worker} v{step}"}, headers=admin
                    )
                else:
                    url = (
                        f"/api/v1/clinics/{clinics[step % 5]}"
                        if step % 2
                        else f"/api/v1/organizations/{org}/clinics"
                    )
                    answer = await client.get(url, headers=admin)
                    cache_states.append(
                        (time.monotonic() - started, answer.headers.get("x-cache", ""))
                    )
                statuses[answer.status_code] += 1
                await asyncio.sleep(0.005)

        async def outage() -> None:
            await asyncio.sleep(1.5)
            await asyncio.to_thread(restore.stop, "redis")
            await asyncio.sleep(2.0)
            await asyncio.to_thread(restore.start, "redis")

        await asyncio.gather(outage(), *(traffic(w) for w in range(5)))
    assert set(statuses) == {200}, statuses
    assert sum(statuses.values()) > 200
    assert any(state == "hit" for at, state in cache_states if at > 6.0), (
        "no Redis-era hits after restart"
    )
    assert app.state.cache.snapshot()["degraded"] is False


async def test_freshness_across_workers_while_redis_is_down(
    fault_settings: Settings, restore: FaultStack
) -> None:
    """What the README promises: a worker sees its own writes at once; another worker's
    writes within CACHE_LOCAL_TTL, because degraded entries live that long at most."""
    local_ttl = 0.5
    settings = fault_settings.with_overrides(cache_local_ttl=local_ttl)
    worker_a, worker_b = create_app(settings), create_app(settings)  # two workers' state
    async with await make_client(worker_a) as a, await make_client(worker_b) as b:
        admin = await new_key(worker_a)
        _, clinics = await _seed(a, admin)
        url = f"/api/v1/clinics/{clinics[0]}"
        restore.stop("redis")
        assert (await a.get(url, headers=admin)).json()["name"] == "Clinic 0"
        assert (await a.get(url, headers=admin)).headers["x-cache"] == "hit"  # in-process tier
        written_at = time.monotonic()
        assert (await b.patch(url, json={"name": "Renamed"}, headers=admin)).status_code == 200
        assert (await b.get(url, headers=admin)).json()["name"] == "Renamed"  # own write: at once
        while (await a.get(url, headers=admin)).json()["name"] != "Renamed":  # noqa: ASYNC110 - polling the other worker's view
            await asyncio.sleep(0.02)
        assert time.monotonic() - written_at <= local_ttl + 0.25
        restore.start("redis")


async def test_multi_worker_write_without_redis_is_refused_not_lost(
    fault_settings: Settings, restore: FaultStack, capabilities: Any
) -> None:
    if capabilities.atomic_updates:
        pytest.skip("the server applies single-document updates atomically: no write guard needed")
    app = create_app(fault_settings.with_overrides(workers=2))
    async with await make_client(app) as client:
        admin = await new_key(app)
        _, clinics = await _seed(client, admin)
        url = f"/api/v1/clinics/{clinics[0]}"
        restore.stop("redis")
        refused = await client.patch(url, json={"name": "Unguarded"}, headers=admin)
        assert refused.status_code == 503
        assert refused.headers["retry-after"]
        assert refused.headers["content-type"] == "application/problem+json"
        restore.start("redis")
        current = await client.get(url, headers={**admin, "Cache-Control": "no-cache"})
        assert (current.json()["name"], current.json()["version"]) == ("Clinic 0", 1)


async def test_a_write_redis_never_heard_of_is_not_hidden_when_it_returns(
    fault_settings: Settings, restore: FaultStack
) -> None:
    """Redis unreachable (paused, so it keeps its data) while a write is acknowledged: the
    write's generations never reached Redis, so what Redis cached before would look current.
    The epoch moved on its return retires it: no GET after the 2xx sees the old data."""
    pauser = redis.asyncio.from_url(fault_settings.redis_url)
    app = create_app(fault_settings)
    try:
        async with await make_client(app) as client:
            admin = await new_key(app)
            _, clinics = await _seed(client, admin)
            url = f"/api/v1/clinics/{clinics[0]}"
            await client.get(url, headers=admin)  # stored in both tiers
            assert (await client.get(url, headers=admin)).headers["x-cache"] == "hit"
            await pauser.execute_command("CLIENT", "PAUSE", 1500, "ALL")
            written = await client.patch(url, json={"name": "Renamed offline"}, headers=admin)
            assert written.status_code == 200
            assert app.state.cache.snapshot()["degraded"] is True
            names = []
            give_up = time.monotonic() + 10
            while app.state.cache.snapshot()["degraded"] and time.monotonic() < give_up:
                names.append((await client.get(url, headers=admin)).json()["name"])
                await asyncio.sleep(0.1)
            assert app.state.cache.snapshot()["degraded"] is False, "Redis never came back"
            names.append((await client.get(url, headers=admin)).json()["name"])
    finally:
        await pauser.aclose()
    assert set(names) == {"Renamed offline"}, names
