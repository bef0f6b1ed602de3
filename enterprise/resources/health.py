"""/health/live (no I/O) and /health/ready (pings MongoDB and Redis with short timeouts)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import falcon
from falcon.asgi import Request, Response

from enterprise.auth import Role
from enterprise.openapi import Operation
from enterprise.resources.base import dumps

# Versions, capabilities and the reasons of failed checks help an attacker as much as an SRE.
DETAILS_FOR = frozenset({Role.SRE, Role.PLATFORM_ADMIN})
STATUS = {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]}
LIVE_BODY = b'{"status":"ok"}'
LIVE_HEADERS = [("Cache-Control", "no-store")]


class Live:
    """The GET is also answered before Falcon runs, from the same body and headers
    (enterprise/hot.py); HEAD and anything with a query string come here."""

    budget_class = "default"
    openapi = {"get": Operation("The process answers (no I/O)", "health", response=STATUS)}

    async def on_get(self, req: Request, resp: Response) -> None:
        resp.data = LIVE_BODY
        for name, value in LIVE_HEADERS:
            resp.set_header(name, value)


async def _probe(check: Callable[[], Awaitable[Any]], timeout_s: float) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            await check()
    except Exception as ex:  # any failure is the answer we report, with its reason
        return {"status": "down", "error": f"{type(ex).__name__}: {ex}"[:300]}
    return {"status": "ok", "latencyMs": round((time.perf_counter() - started) * 1000, 2)}


class Ready:
    """503 when MongoDB is down; 200 "degraded" when only Redis is (the cache is optional).

    Anyone (a load balancer) gets the status alone; `sre` and `platform_admin` keys also get
    each check, the server's version and capabilities, the write guard and the cache.
    """

    budget_class = "default"
    openapi = {
        "get": Operation(
            "MongoDB and Redis answer: ok, or degraded (Redis down), or 503 (MongoDB down)",
            "health",
            response=STATUS,
            other={503: STATUS},
        )
    }

    def __init__(
        self,
        ping_mongo: Callable[[], Awaitable[Any]],
        ping_redis: Callable[[], Awaitable[Any]],
        describe: Callable[[], dict[str, Any]],
        *,
        timeout_s: float = 1.0,
    ) -> None:
        self._ping_mongo = ping_mongo
        self._ping_redis = ping_redis
        self._describe = describe
        self._timeout = timeout_s

    async def on_get(self, req: Request, resp: Response) -> None:
        mongo, redis = await asyncio.gather(
            _probe(self._ping_mongo, self._timeout), _probe(self._ping_redis, self._timeout / 2)
        )
        if mongo["status"] != "ok":
            status, resp.status = "unavailable", falcon.HTTP_503
            resp.set_header("Retry-After", "2")
        elif redis["status"] != "ok":
            status = "degraded"
        else:
            status = "ok"
        resp.set_header("Cache-Control", "no-store")
        principal = req.context.principal
        if principal is None or principal.role not in DETAILS_FOR:
            resp.data = dumps({"status": status})
            return
        resp.data = dumps(
            {"status": status, "checks": {"mongo": mongo, "redis": redis}, **self._describe()}
        )
