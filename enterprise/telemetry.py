"""What this worker measured, published so that any worker can answer for all of them.

Each worker builds a *snapshot* of its figures (latency windows as mergeable histograms,
cache lookups, breakers, slow commands, in-flight requests, RSS) and writes it every
`SRE_SNAPSHOT_INTERVAL_S` to `worker-<pid>.json` in the shared multiprocess directory that
`python -m enterprise serve` creates for its workers. A request to a `/performance` endpoint
takes a fresh snapshot of its own worker and reads the others' files; how they are combined
is `enterprise/performance.py`. The directory is used rather than Redis so the figures stay
whole exactly when they matter most: while Redis is down.

Without a directory (one process: tests, scripts) only this worker's snapshot is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from enterprise.breakers import BreakerBoard
from enterprise.cache import ResponseCache
from enterprise.guard import WriteGuard
from enterprise.metrics import Metrics
from enterprise.repositories.client import CommandTimings
from middleware.budgets import WINDOWS, BudgetTracker

logger = logging.getLogger(__name__)
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class Telemetry:
    """This worker's figures, its snapshot publisher, and the reader of every worker's.

    Args:
        directory: The shared multiprocess directory, or "" for this process alone.
        interval_s: How often the snapshot is published (and so how stale another worker's
            figures may be when this one answers).
    """

    def __init__(
        self,
        *,
        budgets: BudgetTracker,
        cache: ResponseCache,
        breakers: BreakerBoard,
        timings: CommandTimings,
        guard: WriteGuard,
        metrics: Metrics | None = None,
        directory: str = "",
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.budgets = budgets
        self.cache = cache
        self.breakers = breakers
        self.timings = timings
        self.guard = guard
        self.metrics = metrics
        self.directory = Path(directory) if directory else None
        self.interval_s = interval_s
        self._clock = clock
        self.started_at = clock()
        self.inflight = 0
        self._alerts: dict[str, float] = {}  # when there is no shared directory
        self._publisher: asyncio.Task[None] | None = None

    def track_inflight(self, delta: int) -> None:
        self.inflight += delta

    @property
    def _own_file(self) -> Path | None:
        return self.directory / f"worker-{os.getpid()}.json" if self.directory else None

    def snapshot(self) -> dict[str, Any]:
        """This worker's figures now, JSON-ready. Runs on the event loop (the figures are
        not thread-safe); unchanged windows are not encoded again."""
        now = self._clock()
        cache = self.cache.snapshot()
        return {
            "pid": os.getpid(),
            "at": now,
            "startedAt": self.started_at,
            "uptimeS": round(now - self.started_at, 3),
            "rssBytes": _rss_bytes(),
            "inflight": self.inflight,
            "routes": self.budgets.export(),
            "queries": {
                name: {
                    "targetMs": latency.target_ms,
                    "windows": {w: latency.encoded_window(s) for w, s in WINDOWS.items()},
                }
                for name, latency in self.timings.classes.items()
            },
            "cache": {
                "lookups": self.cache.lookups(),
                "entries": cache["localEntries"],
                "evictions": cache["localEvictions"],
                "degraded": cache["degraded"],
                "degradedSince": self.cache.stats.degraded_since,
                "redisErrors": cache["errors"],
                "enabled": self.cache.enabled,
            },
            "breakers": self.breakers.status(),
            "slowQueries": self.timings.report(),
            "writeGuard": {"enabled": self.guard.enabled, "refused": self.guard.refused},
        }

    async def collect(self) -> list[dict[str, Any]]:
        """Every live worker's snapshot: this one's taken now, the others' as last
        published (at most `interval_s` old, plus scheduling delays)."""
        own = self.snapshot()
        if self.directory is None:
            return [own]
        others = await asyncio.to_thread(self._read_others, own["pid"])
        return [own, *others]

    def _read_others(self, own_pid: int) -> list[dict[str, Any]]:
        assert self.directory is not None
        snapshots = []
        for path in sorted(self.directory.glob("worker-*.json")):
            try:
                snapshot = orjson.loads(path.read_bytes())
            except (OSError, orjson.JSONDecodeError):
                continue  # removed by its worker at shutdown, between glob and read
            pid = snapshot.get("pid")
            if pid == own_pid or not _alive(pid):
                continue
            snapshots.append(snapshot)
        return snapshots

    def sync_metrics(self) -> None:
        """Bring the Prometheus values this worker counts in batches up to date."""
        if self.metrics is not None:
            self.metrics.sync(self.inflight, self.cache.stats.lookups)

    async def publish(self) -> None:
        self.sync_metrics()
        path = self._own_file
        if path is None:
            return
        data = orjson.dumps(self.snapshot())
        await asyncio.to_thread(_write_atomically, path, data)

    async def _publish_forever(self) -> None:
        while True:
            try:
                await self.publish()
            except OSError as ex:
                logger.warning("could not publish this worker's figures: %s", ex)
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        """Publish in the background (with a shared directory); at app startup."""
        if self.directory is not None and self._publisher is None:
            self._publisher = asyncio.get_running_loop().create_task(self._publish_forever())

    async def stop(self) -> None:
        self.sync_metrics()  # the last batch of this worker's values counts too
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
            self._publisher = None
        path = self._own_file
        if path is not None:
            await asyncio.to_thread(path.unlink, missing_ok=True)

    async def alerts_since(self, firing: set[str]) -> dict[str, float]:
        """When each firing alert was first seen firing, by any worker; resolved alerts are
        forgotten. Shared through `alerts.json` beside the snapshots."""
        now = self._clock()
        if self.directory is None:
            self._alerts = {name: self._alerts.get(name, now) for name in firing}
            return dict(self._alerts)
        return await asyncio.to_thread(_update_alerts, self.directory / "alerts.json", firing, now)


def _update_alerts(path: Path, firing: set[str], now: float) -> dict[str, float]:
    try:
        known: dict[str, float] = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        known = {}
    since = {name: float(known.get(name, now)) for name in firing}
    if since != known:
        _write_atomically(path, orjson.dumps(since))
    return since


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _rss_bytes() -> int:
    """Resident set size now (Linux), else the peak."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
