"""FerretDB stopped or hung under an app: the MongoDB breaker opens, uncached reads and
writes fail fast with 503 + Retry-After instead of waiting out their 30 s deadline, readiness
shows it, and the same app recovers when the server is back."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import httpx
import pytest

from enterprise.app import create_app
from enterprise.settings import Settings
from tests.conftest import make_client, new_key
from tests.faults.conftest import FaultStack

pytestmark = pytest.mark.faults
ADDRESS = {"line1": "1 Main St", "city": "Austin", "state": "TX", "postalCode": "78701"}


async def _timed(call: Any) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    answer = await call
    return answer, time.perf_counter() - started


async def _until_ok(client: httpx.AsyncClient, url: str, headers: Any, within_s: float) -> float:
    started = time.monotonic()
    while (await client.get(url, headers=headers)).status_code != 200:
        assert time.monotonic() - started < within_s, f"{url} did not recover in {within_s} s"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_stopped_ferretdb_opens_the_breaker_and_fails_fast(
    fault_settings: Settings, restore: FaultStack
) -> None:
    app = create_app(fault_settings)  # threshold 3, reset 1 s (fault_settings)
    async with await make_client(app) as client:
        admin = await new_key(app)
        org = await client.post("/api/v1/organizations", json={"name": "Down"}, headers=admin)
        org_id = org.json()["id"]
        await asyncio.to_thread(restore.stop, "ferretdb")
        # Uncached (a new page size is a new cache key). Calls the driver had begun may wait
        # for the server: a retried read selects a server again under the request deadline.
        begun = [
            asyncio.ensure_future(client.get(f"/api/v1/organizations?limit={n}", headers=admin))
            for n in range(1, 4)
        ]
        await asyncio.sleep(fault_settings.circuit_breaker_stall_seconds + 0.5)
        answers = [
            await _timed(client.get(f"/api/v1/organizations?limit={n}", headers=admin))
            for n in range(4, 10)
        ]
        assert {a.status_code for a, _ in answers} == {503}
        assert all(seconds < 3 for _, seconds in answers), answers  # never the 30 s deadline
        last = answers[-1][0]
        assert last.headers["content-type"] == "application/problem+json"
        assert int(last.headers["retry-after"]) >= 1
        assert "circuit breaker open" in last.json()["detail"]
        write, _ = await _timed(
            client.patch(f"/api/v1/organizations/{org_id}", json={"name": "X"}, headers=admin)
        )
        assert write.status_code == 503
        ready = await client.get("/health/ready", headers=admin)  # a key sees the details
        assert ready.status_code == 503
        assert ready.json()["breakers"]["mongodb"] in ("open", "half-open")

        await asyncio.to_thread(restore.start, "ferretdb")
        recovered_s = await _until_ok(client, "/api/v1/organizations?limit=50", admin, 10)
        assert {answer.status_code for answer in await asyncio.gather(*begun)} <= {200, 503}
        after = await client.get(f"/api/v1/organizations/{org_id}", headers=admin)
        assert after.json()["name"] == "Down"  # the refused write was not applied
        assert recovered_s < 10


async def test_hung_ferretdb_opens_the_breaker_instead_of_30_s_waits(
    fault_settings: Settings, restore: FaultStack
) -> None:
    app = create_app(fault_settings)
    async with await make_client(app) as client:
        admin = await new_key(app)
        await client.get("/api/v1/organizations?limit=1", headers=admin)
        restore.signal_mongo(signal.SIGSTOP)
        try:
            # These hang with the server: they wait for an answer it never sends.
            hung = [
                asyncio.ensure_future(client.get(f"/api/v1/organizations?limit={n}", headers=admin))
                for n in range(2, 6)
            ]
            await asyncio.sleep(fault_settings.circuit_breaker_stall_seconds + 0.5)
            # A new call finds the others stalled: a ping, unanswered (1 s), opens the breaker.
            hung.append(
                asyncio.ensure_future(client.get("/api/v1/organizations?limit=7", headers=admin))
            )
            await asyncio.sleep(1.5)
            answers = [
                await _timed(client.get(f"/api/v1/organizations?limit={n}", headers=admin))
                for n in range(8, 12)
            ]
            assert app.state.breakers.status()[1]["state"] in ("open", "half-open")
            assert {a.status_code for a, _ in answers} == {503}
            # At most one is the trial after the reset timeout: a new connection to the hung
            # server, which waits out connectTimeoutMS (2 s). The others are refused at once.
            slow = [seconds for _, seconds in answers if seconds >= 1]
            assert len(slow) <= 1, answers
            assert all(seconds < 5 for seconds in slow), answers
            assert "circuit breaker open" in answers[-1][0].json()["detail"]
        finally:
            restore.signal_mongo(signal.SIGCONT)
        resumed = time.monotonic()
        done = await asyncio.gather(*hung)
        # Calls that began before it opened wait for the server (or their deadline): left
        # to finish, since cancelling a task in PyMongo's server selection is not safe.
        assert time.monotonic() - resumed < 10
        assert {answer.status_code for answer in done} == {200}
        assert await _until_ok(client, "/api/v1/organizations?limit=50", admin, 10) < 10
