"""Prometheus metrics: the instruments, and the exposition that adds up every worker.

`python -m enterprise serve` sets `PROMETHEUS_MULTIPROC_DIR` for its workers, so
prometheus-client keeps each worker's values in files there and the exposition sums them:
counters and histogram buckets add, in-flight adds over live workers, a breaker's state is
the worst over live workers. Without that directory (tests, scripts) the values live in this
process, in a registry of this app's own, so several apps in one process never collide.

Labels are bounded: route *templates* (never paths or ids), methods from a fixed list,
status classes, resource kinds, tiers, breaker names, driver command and collection names.
"""

from __future__ import annotations

import math
import os
from bisect import bisect_left
from pathlib import Path
from typing import Any

import falcon.asgi
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from enterprise.context import RequestTimings
from middleware.budgets import UNMATCHED_ROUTE

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Seconds; chosen around the P95 budgets (150/200/300 ms, 2 s) so a budget is a bucket edge.
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2, 5, 10, 30, 120)
# A value's bucket is the first bound it does not exceed, as prometheus-client's `observe`.
_REQUEST_BOUNDS = (*_REQUEST_BUCKETS, math.inf)
_COMMAND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 30)
BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}


class Metrics:
    """The service's instruments, registered in a registry of this app's own.

    Args:
        multiproc_dir: prometheus-client's multiprocess directory, or "" for one process.
    """

    def __init__(self, multiproc_dir: str = "") -> None:
        self.multiproc_dir = multiproc_dir
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._requests = Histogram(
            "enterprise_http_request_duration_seconds",
            "Request duration by route template, method and status class (each worker "
            "hands its values over once per SRE_SNAPSHOT_INTERVAL_S).",
            ("route", "method", "status_class"),
            buckets=_REQUEST_BUCKETS,
            registry=registry,
        )
        self._inflight = Gauge(
            "enterprise_http_requests_in_flight",
            "Requests being served (sampled at each snapshot, every SRE_SNAPSHOT_INTERVAL_S).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self._cache = Counter(
            "enterprise_cache_lookups",
            "Response-cache lookups by resource kind, outcome (hit/stale/miss) and tier.",
            ("kind", "outcome", "tier"),
            registry=registry,
        )
        self._breakers = Gauge(
            "enterprise_circuit_breaker_state",
            "Breaker state: 0 closed, 1 half-open, 2 open (the worst over live workers).",
            ("breaker",),
            registry=registry,
            multiprocess_mode="livemax",
        )
        self._commands = Histogram(
            "enterprise_db_command_duration_seconds",
            "MongoDB command duration by command and collection.",
            ("command", "collection"),
            buckets=_COMMAND_BUCKETS,
            registry=registry,
        )
        # Labelled children by their label values: `labels()` costs a lock and a lookup
        # per call; the keys are as bounded as the labels (templates, not paths).
        self._request_batches: dict[tuple[str | None, str, int], _Batch] = {}
        self._cache_children: dict[tuple[str, str, str], Any] = {}
        self._cache_synced: dict[tuple[str, str, str], int] = {}
        self._refusals = Counter(
            "enterprise_write_guard_refusals",
            "Writes refused because they could not be serialised (503).",
            registry=registry,
        )

    def observe_request(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, route_class: str, ms: float
    ) -> None:
        """A `RequestObserver` (middleware/budgets.py)."""
        method = req.method if req.method in _METHODS else "OTHER"
        self._count((req.uri_template, method, resp.status_code // 100), ms)

    def observe_hit(
        self,
        template: str,
        status: int,
        x_cache: str | None,
        key_id: str | None,
        ms: float,
        request_id: str,
        timings: RequestTimings,
    ) -> None:
        """A `HitObserver` (enterprise/hot.py): a GET the hot path answered."""
        self._count((template, "GET", status // 100), ms)

    def _count(self, key: tuple[str | None, str, int], ms: float) -> None:
        batch = self._request_batches.get(key)
        if batch is None:
            route = key[0] or UNMATCHED_ROUTE
            child = self._requests.labels(route, key[1], f"{key[2]}xx")
            batch = self._request_batches[key] = _Batch(child)
        seconds = ms / 1000.0
        batch.counts[bisect_left(_REQUEST_BOUNDS, seconds)] += 1
        batch.total += seconds
        batch.pending = True

    def sync(self, inflight: int, lookups: dict[tuple[str, str, str], int]) -> None:
        """Hand over what this worker counts anyway (in-flight requests, cache lookups,
        request durations), in a batch: at each snapshot publish and before an exposition,
        not per request. Each value written costs a lock and a write to the multiprocess
        file: a request's `observe` took 5.7 µs in multiprocess mode, a sixth of a cache
        hit's work in process."""
        self._inflight.set(inflight)
        for batch in self._request_batches.values():
            if batch.pending:
                batch.flush()
        for key, total in lookups.items():
            delta = total - self._cache_synced.get(key, 0)
            if delta > 0:
                child = self._cache_children.get(key)
                if child is None:
                    child = self._cache_children[key] = self._cache.labels(*key)
                child.inc(delta)
                self._cache_synced[key] = total

    def observe_command(self, command: str, collection: str, seconds: float) -> None:
        self._commands.labels(command, collection).observe(seconds)

    def breaker_state(self, breaker: str, state: str) -> None:
        self._breakers.labels(breaker).set(BREAKER_STATES.get(state, 0))

    def refusal(self) -> None:
        self._refusals.inc()

    def exposition(self) -> bytes:
        """The text format: every worker's values when multiprocess, else this app's.

        Reads files in multiprocess mode: call it off the event loop.
        """
        if not self.multiproc_dir:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.multiproc_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def worker_exited(self) -> None:
        """Drop this worker's live gauges (in-flight, breakers) from the sums."""
        if self.multiproc_dir:
            multiprocess.mark_process_dead(os.getpid(), self.multiproc_dir)  # type: ignore[no-untyped-call]


class _Batch:
    """One labelled child's request durations since the last sync: counts per bucket and
    their sum, handed over at once. prometheus-client has no call that adds many values:
    this writes its value objects (`_sum`, `_buckets`) as `observe` does, one `inc` each
    instead of two per request (tests/unit/test_metrics.py checks the exposition matches)."""

    __slots__ = ("child", "counts", "pending", "total")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.counts = [0] * len(_REQUEST_BOUNDS)
        self.total = 0.0
        self.pending = False

    def flush(self) -> None:
        self.child._sum.inc(self.total)
        for index, count in enumerate(self.counts):
            if count:
                self.child._buckets[index].inc(count)
        self.counts = [0] * len(_REQUEST_BOUNDS)
        self.total = 0.0
        self.pending = False


def prepare_directory(path: str) -> None:
    """Empty a multiprocess directory before workers start: values of a previous run would
    otherwise be added to this one's."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    for pattern in ("*.db", "worker-*.json", "alerts.json"):  # prometheus-client's, ours
        for stale in folder.glob(pattern):
            stale.unlink()
