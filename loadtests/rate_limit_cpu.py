"""CPU per cached GET inside the app, rate limiter on vs off: the limiter's own cost, without
the network and HTTP parsing that wrk runs add (and that make the req/s ratios noisy here).

    MONGODB_DATABASE=<seeded db> .venv/bin/python loadtests/rate_limit_cpu.py

Two apps on the same clients (`RATE_LIMIT_ENABLED` false / true, a quota no run reaches),
each warmed until the item is a cache hit; then rounds alternate between them, each calling
the ASGI app directly N times with 16 requests in flight, and report process CPU µs per
request. The ratio of medians is an upper bound of the share the limiter adds to a real
request, whose CPU also includes the server's parsing and the socket work.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from typing import Any

from pymongo import AsyncMongoClient

from enterprise.app import create_app
from enterprise.auth import Role
from enterprise.repositories.api_keys import ApiKeysRepository
from enterprise.services.api_keys import ApiKeysService
from enterprise.settings import Settings

N = int(os.environ.get("RATE_LIMIT_CPU_REQUESTS", "4000"))
ROUNDS = int(os.environ.get("RATE_LIMIT_CPU_ROUNDS", "10"))
CONCURRENCY = 16


async def lifespan(app: Any, kind: str) -> None:
    events = iter([{"type": f"lifespan.{kind}"}])

    async def receive() -> dict[str, Any]:
        try:
            return next(events)
        except StopIteration:
            raise RuntimeError("done") from None

    async def send(message: dict[str, Any]) -> None:
        assert message["type"] == f"lifespan.{kind}.complete", message

    try:
        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    except RuntimeError:
        pass


async def get(app: Any, path: str, key: str) -> tuple[int, dict[bytes, bytes]]:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {key}".encode())],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }  # fmt: skip
    status = 0
    headers: dict[bytes, bytes] = {}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            headers.update(message["headers"])

    await app(scope, receive, send)
    return status, headers


async def run(app: Any, path: str, key: str) -> float:
    async def worker(count: int) -> None:
        for _ in range(count):
            status, _ = await get(app, path, key)
            assert status == 200, status

    cpu = time.process_time()
    await asyncio.gather(*(worker(N // CONCURRENCY) for _ in range(CONCURRENCY)))
    return (time.process_time() - cpu) / N * 1e6


async def main() -> None:
    base = Settings.from_env()
    mongo: AsyncMongoClient[Any] = AsyncMongoClient(base.mongodb_uri)
    db = mongo[base.mongodb_database]
    clinic = await db.clinics.find_one({}, {"_id": 1})
    assert clinic is not None, f"{base.mongodb_database} has no clinics: seed it first"
    path = f"/api/v1/clinics/{clinic['_id']}"
    apps: dict[str, Any] = {}
    key = ""
    for mode, enabled in (("off", False), ("on", True)):
        settings = base.with_overrides(rate_limit_enabled=enabled, rate_limits="*:*:*=60000000/60")
        apps[mode] = create_app(settings, mongo=mongo)
        await lifespan(apps[mode], "startup")
        if not key:
            state = apps[mode].state
            service = ApiKeysService(ApiKeysRepository(db, guard=state.guard))
            key, _ = await service.create("bench rate limit cpu", Role.PLATFORM_ADMIN, None)
        for _ in range(50):
            await get(apps[mode], path, key)
        _, headers = await get(apps[mode], path, key)
        assert headers.get(b"x-cache") == b"hit", headers
        assert (b"ratelimit" in headers) is enabled, headers
    results: dict[str, list[float]] = {"off": [], "on": []}
    ratios = []
    for round_ in range(ROUNDS):
        order = ("off", "on") if round_ % 2 == 0 else ("on", "off")
        measured = {mode: await run(apps[mode], path, key) for mode in order}
        for mode, value in measured.items():
            results[mode].append(value)
        ratios.append(measured["on"] / measured["off"])
    out = sys.stdout
    load = os.getloadavg()[0]
    out.write(f"load average {load:.1f}; {ROUNDS} rounds of {N} cached GETs, -c{CONCURRENCY}\n")
    for mode, values in results.items():
        listed = " / ".join(f"{v:.0f}" for v in values)
        median = statistics.median(values)
        out.write(f"{mode:4s} CPU µs/request: {listed} → median {median:.1f}\n")
    listed = " / ".join(f"{r:.3f}" for r in ratios)
    out.write(f"on ÷ off per round: {listed} → median {statistics.median(ratios):.3f}\n")
    out.write(f"limiter: {apps['on'].state.limiter.snapshot()}\n")
    for app in apps.values():
        await lifespan(app, "shutdown")
    await mongo.close()


if __name__ == "__main__":
    asyncio.run(main())
