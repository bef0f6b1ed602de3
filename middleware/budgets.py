"""Per-route P95 latency budgets: windows, breach counts, burn rates and breach warnings.

Each route template gets a :class:`~enterprise.histogram.SlidingLatency` with its class's
target, so ``/performance/budgets`` can show where the tail is going and the log says when a
budget is broken — without computing quantiles on the request path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import falcon.asgi

from enterprise.context import current_timings, record_timing
from enterprise.histogram import SlidingLatency, Window
from middleware.response_cache import REFRESH

logger = logging.getLogger(__name__)

DEFAULT_CLASS = "default"
UNMATCHED_ROUTE = "unmatched"
ALLOWED_OVER_FRACTION = 0.05  # a P95 target lets 5% of requests be slower
CHECK_INTERVAL_S = 1.0
WINDOWS = {"1m": 60, "5m": 300, "1h": 3600}


@dataclass(slots=True)
class _RouteBudget:
    route_class: str
    target_ms: float
    latency: SlidingLatency
    last_check: float
    last_warning: float | None = None


class BudgetTracker:
    """Tracks latency per route template against the P95 target of its route class.

    Burn rate: a P95 target allows 5% of requests over the target (the error budget).
    ``burn_rate = (breaches / count) / 0.05``, so 1.0 means the budget is being spent exactly
    as fast as it accrues, 2.0 twice as fast, and 0.0 that no request was over target.

    Args:
        targets_ms: P95 target per route class; must contain ``"default"``, which also serves
            unknown classes.
        clock: Monotonic seconds; injectable for tests.
        warn_interval_s: At most one breach warning per route in this many seconds, so a
            sustained breach does not flood the log.

    Raises:
        ValueError: ``targets_ms`` has no ``"default"`` entry.
    """

    def __init__(
        self,
        targets_ms: Mapping[str, float],
        *,
        clock: Callable[[], float] = time.monotonic,
        warn_interval_s: float = 60.0,
    ) -> None:
        if DEFAULT_CLASS not in targets_ms:
            raise ValueError('targets_ms needs a "default" route class')
        self._targets = dict(targets_ms)
        self._clock = clock
        self._warn_interval_s = warn_interval_s
        self._routes: dict[str, _RouteBudget] = {}

    def record(self, route: str, route_class: str, ms: float, *, error: bool = False) -> None:
        """Record one request (``error``: it failed on our side, a 5xx); at most once a
        second per route, check the 1-min P95."""
        budget = self._routes.get(route)
        now = self._clock()
        if budget is None:
            target = self._targets.get(route_class, self._targets[DEFAULT_CLASS])
            budget = self._routes[route] = _RouteBudget(
                route_class=route_class,
                target_ms=target,
                latency=SlidingLatency(target_ms=target, clock=self._clock),
                last_check=now,
            )
        budget.latency.record(ms, error=error)
        if now - budget.last_check >= CHECK_INTERVAL_S:
            budget.last_check = now
            self._check(route, budget, now)

    def _check(self, route: str, budget: _RouteBudget, now: float) -> None:
        p95 = budget.latency.snapshot(WINDOWS["1m"]).p95
        if p95 <= budget.target_ms:
            return
        if budget.last_warning is not None and now - budget.last_warning < self._warn_interval_s:
            return
        budget.last_warning = now
        logger.warning(
            "budget breach: route=%s p95=%.1fms target=%.0fms", route, p95, budget.target_ms
        )

    def snapshot(self) -> list[dict[str, Any]]:
        """Budget status of every route seen, sorted by route, ready for JSON."""
        return [
            {
                "route": route,
                "class": budget.route_class,
                "target_ms": budget.target_ms,
                "windows": {name: _window(budget, seconds) for name, seconds in WINDOWS.items()},
            }
            for route, budget in sorted(self._routes.items())
        ]

    def export(self) -> list[dict[str, Any]]:
        """Every route's windows as mergeable histograms (``Window.encode``), so another
        process can add them to its own; :func:`window_summary` reads the sum."""
        return [
            {
                "route": route,
                "class": budget.route_class,
                "targetMs": budget.target_ms,
                "windows": {
                    name: budget.latency.encoded_window(seconds)
                    for name, seconds in WINDOWS.items()
                },
            }
            for route, budget in sorted(self._routes.items())
        ]


def _window(budget: _RouteBudget, window_s: int) -> dict[str, Any]:
    return window_summary(budget.latency.window(window_s), budget.target_ms)


def window_summary(window: Window, target_ms: float) -> dict[str, Any]:
    """One window against its P95 target, ready for JSON (also for windows summed over
    several processes)."""
    stats = window.stats()
    if stats.count == 0:
        return {
            "count": 0,
            "p50": None,
            "p95": None,
            "p99": None,
            "max": None,
            "breaches": 0,
            "burn_rate": None,
            "errors": 0,
            "status": "no-data",
        }
    return {
        "count": stats.count,
        "errors": stats.errors,
        "p50": stats.p50,
        "p95": stats.p95,
        "p99": stats.p99,
        "max": stats.max,
        "breaches": stats.over_target,
        "burn_rate": round(stats.over_target / stats.count / ALLOWED_OVER_FRACTION, 3),
        "status": "breach" if stats.p95 > target_ms else "ok",
    }


RequestObserver = Callable[[falcon.asgi.Request, falcon.asgi.Response, str, float], None]
"""Called once per finished request with its route class and duration (ms): metrics and the
access log hang here, so a request is timed once for all of them. Must not block."""


class BudgetMiddleware:
    """Falcon middleware that feeds every request's latency into a :class:`BudgetTracker`
    (and into each of ``observers``).

    It should be the first Falcon middleware so the time includes the others (auth, rate
    limit, cache). Latency is keyed by route template, not path, so ``/clinics/{clinic_id}``
    is one route however many clinics exist. The route class comes from the resource's
    ``budget_class`` attribute.

    Responses that short-circuit in another middleware's ``process_request`` never reach
    routing, so they are recorded as ``"unmatched"``; short-circuit in ``process_resource``
    instead to keep the route.
    """

    def __init__(
        self, tracker: BudgetTracker, *, observers: Sequence[RequestObserver] = ()
    ) -> None:
        self._tracker = tracker
        self._observers = tuple(observers)

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        # From the outermost wrapper's start when there is one, so the budget, the metrics
        # and the access log time what `Server-Timing: app` reports, not just Falcon's part.
        timings = current_timings()
        req.context.budget_started = timings.started if timings else time.perf_counter()
        req.context.budget_resource = None
        if timings is not None:
            # A request cancelled by its deadline never reaches process_response: the
            # deadline wrapper calls this with its 504 instead.
            timings.unfinished = lambda status: self._record(req, resp, None, status)

    async def process_resource(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: object,
        params: dict[str, Any],
    ) -> None:
        req.context.budget_resource = resource

    async def process_response(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: object,
        req_succeeded: bool,
    ) -> None:
        timings = current_timings()
        if timings is not None:
            timings.unfinished = None
        self._record(req, resp, resource, None)

    def _record(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: object,
        status: int | None,
    ) -> None:
        started: float | None = req.context.get("budget_started")
        if started is None:  # process_request did not run (an earlier middleware raised)
            return
        if req.scope.get(REFRESH):  # a background refresh, which no client waits for
            return
        if status is not None:
            resp.status = status  # what the client got instead of this response
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        known = resource if resource is not None else req.context.get("budget_resource")
        route = f"{req.method} {req.uri_template}" if req.uri_template else UNMATCHED_ROUTE
        route_class = getattr(known, "budget_class", DEFAULT_CLASS)
        # The very figure recorded, also in Server-Timing (`route`), so a client can check
        # the percentiles reported against its own list of them.
        record_timing("route", elapsed_ms)
        self._tracker.record(route, route_class, elapsed_ms, error=resp.status_code >= 500)
        for observe in self._observers:
            observe(req, resp, route_class, elapsed_ms)
