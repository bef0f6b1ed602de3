"""Readiness follows the real servers: FerretDB down → 503 within 2 s; Redis down → degraded."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from enterprise.app import create_app
from enterprise.settings import Settings
from tests.conftest import make_client, new_key
from tests.faults.conftest import FaultStack

pytestmark = pytest.mark.faults


async def _ready(client: httpx.AsyncClient) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    answer = await client.get("/health/ready")
    return answer, time.perf_counter() - started


async def _wait_for(
    client: httpx.AsyncClient, status: int, state: str, within: float = 15
) -> httpx.Response:
    deadline = time.monotonic() + within
    while True:
        answer, _ = await _ready(client)
        if answer.status_code == status and answer.json()["status"] == state:
            return answer
        assert time.monotonic() < deadline, answer.text
        await asyncio.sleep(0.1)


async def test_mongo_outage_and_recovery(fault_settings: Settings, restore: FaultStack) -> None:
    app = create_app(fault_settings)
    async with await make_client(app) as client:
        client.headers.update(await new_key(app, "sre"))  # the checks are shown to SREs
        answer, _ = await _ready(client)
        assert answer.status_code == 200
        assert answer.json()["checks"]["mongo"]["status"] == "ok"
        assert answer.json()["checks"]["redis"]["status"] == "ok"

        restore.stop("ferretdb")
        answer, took = await _ready(client)
        assert answer.status_code == 503
        assert answer.headers["retry-after"]
        assert answer.json()["checks"]["mongo"]["status"] == "down"
        assert took < 2.0

        restore.start("ferretdb")  # same app, no restart
        await _wait_for(client, 200, "ok")


async def test_redis_outage_is_degraded_not_down(
    fault_settings: Settings, restore: FaultStack
) -> None:
    app = create_app(fault_settings)
    async with await make_client(app) as client:
        client.headers.update(await new_key(app, "sre"))
        restore.stop("redis")
        answer, took = await _ready(client)
        assert answer.status_code == 200
        assert answer.json()["status"] == "degraded"
        assert answer.json()["checks"]["redis"]["status"] == "down"
        assert took < 2.0
        restore.start("redis")
        await _wait_for(client, 200, "ok")
