"""/metrics: the Prometheus text format, summed over every worker (`enterprise/metrics.py`).

For a key with the `sre` (or `platform_admin`, `metrics_scraper`) role, or `METRICS_TOKEN`.
"""

from __future__ import annotations

import asyncio

from falcon.asgi import Request, Response

from enterprise.auth import Action
from enterprise.metrics import CONTENT_TYPE, Metrics
from enterprise.openapi import Operation
from enterprise.querying import reject_unknown
from enterprise.telemetry import Telemetry


class Exposition:
    budget_class = "default"
    openapi = {
        "get": Operation(
            "Prometheus text format, every worker summed",
            "metrics",
            response={"type": "string"},
            media=CONTENT_TYPE,
        )
    }

    def __init__(self, metrics: Metrics, telemetry: Telemetry) -> None:
        self._metrics = metrics
        self._telemetry = telemetry

    async def on_get(self, req: Request, resp: Response) -> None:
        req.context.principal.require(Action.SCRAPE)
        reject_unknown(req.params, frozenset())
        self._telemetry.sync_metrics()  # this worker's batched values, current
        # Multiprocess mode reads every worker's files: off the event loop.
        resp.data = await asyncio.to_thread(self._metrics.exposition)
        resp.content_type = CONTENT_TYPE
        resp.set_header("Cache-Control", "no-store")
