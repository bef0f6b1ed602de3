"""Cancelling a PyMongo call that waits in server selection, as the app's read bound and the
request deadline do, must end it at once and leave the client usable.

On CPython 3.11 neither holds. PyMongo waits on its topology condition through
`asyncio.wait_for`, and 3.11's `wait_for` loses a cancellation that arrives while it ends its
own timeout: the call then runs on to its full selection timeout. On a second cancellation it
returns while the condition is still taking the lock back, and the topology lock stays held
for good: every later call of that worker hangs, past its own timeout. That is what held some
requests of the outage test for the driver's whole 29 s deadline. Both scenarios fail on
3.11.7 and pass on 3.12.1 with PyMongo 4.20.1, hence `requires-python >= 3.12`.

Each scenario runs in a child interpreter (this file as a script), so that a client broken
for good fails the test by a timeout instead of hanging the suite. A port nobody listens on
stands for a stopped server: every selection waits and retries.

    python tests/integration/test_driver_cancellation.py twice|busy
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pymongo
import pytest
from pymongo import AsyncMongoClient

CALLS = 30


async def _find(client: AsyncMongoClient[dict[str, object]]) -> None:
    with pymongo.timeout(20):
        await client.db.items.find_one({})


async def _cancelled_twice(client: AsyncMongoClient[dict[str, object]]) -> str | None:
    for _ in range(8):
        calls = [asyncio.create_task(_find(client)) for _ in range(CALLS)]
        await asyncio.sleep(random.uniform(0.05, 1.2))  # across the 0.5 s re-checks
        for call in calls:
            call.cancel()  # the read bound
        await asyncio.sleep(0)  # each call now ending its wait
        for call in calls:
            call.cancel()  # the request deadline, say
        done, pending = await asyncio.wait(calls, timeout=10)
        if pending:
            return f"{len(pending)} of {CALLS} calls still run 10 s after their cancel"
        errors = [c.exception() for c in done if not c.cancelled()]
        if errors:
            return f"cancelling raised {errors[0]!r} ({len(errors)} of {CALLS})"
    began = time.monotonic()
    try:
        with pymongo.timeout(1):
            await client.db.items.find_one({})
    except pymongo.errors.ServerSelectionTimeoutError:
        pass
    if time.monotonic() - began > 3:
        return f"the next call took {time.monotonic() - began:.1f} s, bounded at 1 s"
    return None


async def _bounded_on_a_busy_loop(client: AsyncMongoClient[dict[str, object]]) -> str | None:
    async def busy() -> None:
        while True:
            time.sleep(0.002)  # noqa: ASYNC251 - a handler's CPU work between awaits
            await asyncio.sleep(0)

    async def bounded(bound: float) -> float:
        began = time.monotonic()
        try:
            async with asyncio.timeout(bound):  # as the read bound does
                await _find(client)
        except TimeoutError:
            pass
        return time.monotonic() - began - bound

    hog = asyncio.create_task(busy())
    try:
        for _ in range(3):
            calls = [asyncio.create_task(bounded(random.uniform(0.3, 1.6))) for _ in range(60)]
            done, pending = await asyncio.wait(calls, timeout=10)
            if pending:
                return f"{len(pending)} of 60 calls bounded at <= 1.6 s still run at 10 s"
            worst = max(call.result() for call in done)
            if worst > 1.0:
                return f"a call ended {worst:.2f} s after its bound"
    finally:
        hog.cancel()
    return None


SCENARIOS = {"twice": _cancelled_twice, "busy": _bounded_on_a_busy_loop}


async def _main(name: str, port: int) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=20_000
    )
    failure = await SCENARIOS[name](client)
    if failure is not None:
        sys.stdout.write(failure + "\n")
        sys.stdout.flush()
        os._exit(1)  # a broken client may never close, nor let asyncio.run end
    await client.close()
    sys.stdout.write("ok\n")


@pytest.mark.integration
@pytest.mark.parametrize(
    "scenario", ["twice", "busy"], ids=["cancelled-twice", "bound-on-a-busy-loop"]
)
def test_a_cancelled_server_selection_ends_and_leaves_the_client_usable(scenario: str) -> None:
    from tests.conftest import free_port

    child = [sys.executable, str(Path(__file__)), scenario, str(free_port())]
    try:
        done = subprocess.run(child, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{scenario}: the child hung for 60 s (a topology lock held for good)")
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr[-2000:]


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1))
