"""The MongoDB client: built from settings, monitored, with slow commands reported."""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

import pymongo
from pymongo import AsyncMongoClient, monitoring

from enterprise.capabilities import ServerCapabilities
from enterprise.context import record_timing
from enterprise.histogram import SlidingLatency
from enterprise.plans import (
    QUERY_CLASS_TARGETS_MS,
    command_shape,
    explainable,
    query_class,
    shape_key,
)
from enterprise.repositories.explain import PlanExplainer
from enterprise.repositories.probes import probe_features
from enterprise.settings import Settings

logger = logging.getLogger(__name__)
Document = dict[str, Any]
MongoClient = AsyncMongoClient[Document]


CommandObserver = Callable[[str, str, float], None]  # (command, collection, seconds)


class CommandTimings(monitoring.CommandListener):
    """Feeds `Server-Timing: db`, latency per query class and the slow-query report.

    A slow command is kept with its *shape* (field names and operators, values redacted:
    `enterprise/plans.py`), never with documents or filter values, and its shape is handed
    to the `explainer`, which plans it off the request path.

    Args:
        slow_ms: Commands at least this slow are reported (`DB_SLOW_QUERY_THRESHOLD`).
        keep: How many recent slow commands to keep.
        explainer: Explains slow shapes in the background; None: no plans.
        on_command: Told every command's name, collection and duration (the metrics).
    """

    def __init__(
        self,
        slow_ms: float,
        keep: int = 100,
        *,
        explainer: PlanExplainer | None = None,
        on_command: CommandObserver | None = None,
    ) -> None:
        self._slow_ms = slow_ms
        self.slow: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)
        self._started: dict[int, tuple[str, str, Mapping[str, Any]]] = {}
        self.explainer = explainer
        self._on_command = on_command
        self.classes = {
            name: SlidingLatency(target_ms=target)
            for name, target in QUERY_CLASS_TARGETS_MS.items()
        }

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        command = event.command
        target = command.get(event.command_name)
        if event.command_name == "getMore":
            target = command.get("collection")
        collection = target if isinstance(target, str) else ""
        self._started[event.request_id] = (collection, event.database_name, command)

    def _finish(self, event: Any, ok: bool) -> None:
        ms = event.duration_micros / 1000
        collection, database, command = self._started.pop(event.request_id, ("", "", {}))
        name: str = event.command_name
        record_timing("db", ms)
        if self._on_command is not None:
            self._on_command(name, collection, ms / 1000)
        query = query_class(name, command)
        if query is not None:
            self.classes[query].record(ms, error=not ok)
        if ms >= self._slow_ms and name != "explain":
            self._slow(name, collection, database, command, ms, ok)

    def _slow(
        self,
        name: str,
        collection: str,
        database: str,
        command: Mapping[str, Any],
        ms: float,
        ok: bool,
    ) -> None:
        shape = command_shape(name, command)
        key = shape_key(name, collection, shape)
        self.slow.append(
            {
                "at": time.time(),
                "command": name,
                "collection": collection,
                "ms": round(ms, 2),
                "ok": ok,
                "shape": shape,
                "shapeKey": key,
            }
        )
        if self.explainer is not None and explainable(name):
            self.explainer.request(key, database, command)
        logger.warning("slow MongoDB command %s on %s: %.1f ms", name, collection, ms)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._finish(event, True)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._finish(event, False)

    def report(self) -> list[dict[str, Any]]:
        """Recent slow commands, newest first, each with its plan summary (or why none)."""
        entries = []
        for entry in reversed(self.slow):
            plan: dict[str, Any] | None
            if not explainable(entry["command"]):
                plan = {"available": False, "reason": f"{entry['command']} is not explained"}
            elif self.explainer is None:
                plan = {"available": False, "reason": "explains are off"}
            else:
                plan = self.explainer.plan(entry["shapeKey"]) or {"status": "pending"}
            entries.append({**entry, "plan": plan})
        return entries


def open_client(
    settings: Settings, listeners: list[monitoring.CommandListener]
) -> AsyncMongoClient[Document]:
    """No I/O here: the client connects on first use."""
    return AsyncMongoClient(
        settings.mongodb_uri,
        minPoolSize=settings.db_pool_size,
        maxPoolSize=settings.db_max_pool_size,
        serverSelectionTimeoutMS=settings.db_server_selection_timeout_ms,
        connectTimeoutMS=settings.db_connect_timeout_ms,
        tz_aware=True,
        appname="enterprise",
        event_listeners=listeners,
    )


async def read_capabilities(
    client: AsyncMongoClient[Document], database: str
) -> ServerCapabilities:
    """`buildInfo` + `hello`; every server but FerretDB v1 (which lists its features in
    `buildInfo`) is also probed, on a scratch collection in `database`."""
    build_info = await client.admin.command("buildInfo")
    hello = await client.admin.command("hello")
    probed = None
    if "ferretdbVersion" not in build_info:
        probed = await probe_features(client[database])
    return ServerCapabilities.from_server(build_info, hello, probed)


async def ping(client: AsyncMongoClient[Document], timeout_s: float) -> float:
    """Round trip in ms; raises on failure within `timeout_s`."""
    started = time.perf_counter()
    with pymongo.timeout(timeout_s):
        await client.admin.command("ping")
    return (time.perf_counter() - started) * 1000


operation_timeout: Callable[[float], AbstractContextManager[Any]] = pymongo.timeout
