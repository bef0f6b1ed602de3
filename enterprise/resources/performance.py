"""performance/metrics/summary, budgets, cache/stats, circuit-breakers, slow-queries.

For the `sre` and `platform_admin` roles. Each reads every worker's figures through the one
`Telemetry` the factory builds and combines them (`enterprise/performance.py`); never cached.
"""

from __future__ import annotations

import time
from typing import Any

from falcon.asgi import Request, Response

from enterprise import performance
from enterprise.auth import Action
from enterprise.openapi import Operation
from enterprise.querying import reject_unknown
from enterprise.resources.base import dumps
from enterprise.telemetry import Telemetry


class _Figures:
    budget_class = "default"

    @property
    def openapi(self) -> dict[str, Operation]:
        summary = (type(self).__doc__ or "").strip()
        return {"get": Operation(summary, "performance", response={"type": "object"})}

    def __init__(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry

    async def _snapshots(self, req: Request) -> list[dict[str, Any]]:
        req.context.principal.require(Action.OPERATE)
        reject_unknown(req.params, frozenset())
        return await self._telemetry.collect()


def _send(resp: Response, body: dict[str, Any]) -> None:
    resp.set_header("Cache-Control", "no-store")
    resp.data = dumps(body)


class Summary(_Figures):
    """Request rates, latency percentiles and errors over every worker"""

    async def on_get(self, req: Request, resp: Response) -> None:
        _send(resp, performance.summary(await self._snapshots(req), time.time()))


class Budgets(_Figures):
    """P95 budgets per route class: status, burn rate and firing alerts"""

    async def on_get(self, req: Request, resp: Response) -> None:
        snapshots = await self._snapshots(req)
        alerts = performance.firing_alerts(snapshots)
        since = await self._telemetry.alerts_since({alert["id"] for alert in alerts})
        _send(resp, performance.budgets(snapshots, alerts, since))


class CacheStats(_Figures):
    """Response-cache hits, misses and tiers"""

    async def on_get(self, req: Request, resp: Response) -> None:
        _send(resp, performance.cache_stats(await self._snapshots(req)))


class CircuitBreakers(_Figures):
    """Circuit breakers and their states"""

    async def on_get(self, req: Request, resp: Response) -> None:
        _send(resp, performance.circuit_breakers(await self._snapshots(req)))


class SlowQueries(_Figures):
    """The slowest MongoDB commands, with their plans"""

    def __init__(self, telemetry: Telemetry, threshold_ms: float) -> None:
        super().__init__(telemetry)
        self._threshold_ms = threshold_ms

    async def on_get(self, req: Request, resp: Response) -> None:
        snapshots = await self._snapshots(req)
        _send(resp, performance.slow_queries(snapshots, self._threshold_ms))


def routes(telemetry: Telemetry, *, slow_query_ms: float) -> list[tuple[str, object]]:
    base = "/api/v1/performance"
    return [
        (f"{base}/metrics/summary", Summary(telemetry)),
        (f"{base}/budgets", Budgets(telemetry)),
        (f"{base}/cache/stats", CacheStats(telemetry)),
        (f"{base}/circuit-breakers", CircuitBreakers(telemetry)),
        (f"{base}/slow-queries", SlowQueries(telemetry, slow_query_ms)),
    ]
