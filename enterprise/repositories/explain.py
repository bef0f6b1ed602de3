"""Plans for slow query shapes: `explain` run off the request path, remembered per shape.

A slow command's shape (`enterprise/plans.py`) is explained once, in a background task with
a fresh context: no request's deadline, timings or request id leak into it, and the request
that was slow has long been answered. The first command of a shape lends its values to the
explain (the plan is for that shape, not for those values); only the summary is kept.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from enterprise.plans import summarize_plan

logger = logging.getLogger(__name__)
# Fields of a sent command that are the driver's, not the query's; `explain` refuses some.
_DRIVER_FIELDS = frozenset({"lsid", "txnNumber", "autocommit", "startTransaction", "maxTimeMS"})
EXPLAIN_MAX_TIME_MS = 5000


class PlanExplainer:
    """Remembers up to `keep` plan summaries per shape key; explains one shape at a time."""

    def __init__(self, *, keep: int = 500) -> None:
        self._client: AsyncMongoClient[Any] | None = None
        self._plans: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._keep = keep
        self._queue: asyncio.Queue[tuple[str, str, dict[str, Any]]] | None = None
        self._worker: asyncio.Task[None] | None = None

    def bind(self, client: AsyncMongoClient[Any]) -> None:
        """The client to explain with (the app's own, once it exists)."""
        self._client = client

    def plan(self, key: str) -> dict[str, Any] | None:
        return self._plans.get(key)

    def request(self, key: str, database: str, command: Mapping[str, Any]) -> None:
        """Ask for the plan of shape `key` (no-op when known or queued). Never blocks."""
        if self._client is None or key in self._plans:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not on an event loop (a script): no background work to start
        if self._queue is None:
            self._queue = asyncio.Queue(maxsize=100)
        self._plans[key] = {"status": "pending"}
        explain = {k: v for k, v in command.items() if not k.startswith("$")}
        explain = {k: v for k, v in explain.items() if k not in _DRIVER_FIELDS}
        explain["maxTimeMS"] = EXPLAIN_MAX_TIME_MS
        try:
            self._queue.put_nowait((key, database, explain))
        except asyncio.QueueFull:
            self._plans.pop(key, None)  # asked again by the next slow command of the shape
            return
        if self._worker is None or self._worker.done():
            # An empty context: the request's pymongo.timeout and Server-Timing stay its own.
            self._worker = loop.create_task(self._run(), context=contextvars.Context())

    async def _run(self) -> None:
        assert self._queue is not None
        while not self._queue.empty():
            key, database, command = self._queue.get_nowait()
            self._remember(key, await self._explain(database, command))

    async def _explain(self, database: str, command: dict[str, Any]) -> dict[str, Any]:
        assert self._client is not None
        try:
            explained = await self._client[database].command(
                {"explain": command, "verbosity": "executionStats"}
            )
        except PyMongoError as ex:
            logger.warning("explain of a slow query shape failed: %s", ex)
            return {"available": False, "reason": f"explain failed: {type(ex).__name__}: {ex}"}
        return summarize_plan(explained)

    def _remember(self, key: str, summary: dict[str, Any]) -> None:
        self._plans[key] = summary
        self._plans.move_to_end(key)
        while len(self._plans) > self._keep:
            self._plans.popitem(last=False)

    async def aclose(self) -> None:
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
