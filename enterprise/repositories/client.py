"""The MongoDB client: built from settings, monitored, with slow commands logged."""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pymongo
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from enterprise.capabilities import ServerCapabilities
from enterprise.settings import Settings
from middleware.request_context import record_timing

logger = logging.getLogger(__name__)
Document = dict[str, Any]
MongoClient = AsyncMongoClient[Document]


class CommandTimings(monitoring.CommandListener):
    """Feeds `Server-Timing: db` and keeps the slowest recent commands for SREs.

    Only the command name, collection and duration are kept: never documents or filters
    with patient or provider data.
    """

    def __init__(self, slow_ms: float, keep: int = 100) -> None:
        self._slow_ms = slow_ms
        self.slow: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)
        self._targets: dict[int, str] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        self._targets[event.request_id] = target if isinstance(target, str) else ""

    def _finish(self, event: Any, ok: bool) -> None:
        ms = event.duration_micros / 1000
        target = self._targets.pop(event.request_id, "")
        record_timing("db", ms)
        if ms >= self._slow_ms:
            entry = {
                "at": time.time(),
                "command": event.command_name,
                "collection": target,
                "ms": round(ms, 2),
                "ok": ok,
            }
            self.slow.append(entry)
            logger.warning("slow MongoDB command %s on %s: %.1f ms", event.command_name, target, ms)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._finish(event, True)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._finish(event, False)


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


async def read_capabilities(client: AsyncMongoClient[Document]) -> ServerCapabilities:
    build_info = await client.admin.command("buildInfo")
    hello = await client.admin.command("hello")
    return ServerCapabilities.from_server(build_info, hello)


async def ping(client: AsyncMongoClient[Document], timeout_s: float) -> float:
    """Round trip in ms; raises on failure within `timeout_s`."""
    started = time.perf_counter()
    with pymongo.timeout(timeout_s):
        await client.admin.command("ping")
    return (time.perf_counter() - started) * 1000


def database(client: AsyncMongoClient[Document], name: str) -> AsyncDatabase[Document]:
    return client[name]


operation_timeout: Callable[[float], AbstractContextManager[Any]] = pymongo.timeout
