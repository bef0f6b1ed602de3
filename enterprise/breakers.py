"""Circuit breakers (pybreaker) shared by the Redis tier now and the MongoDB path later."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import pybreaker

logger = logging.getLogger(__name__)
StateObserver = Callable[[str, str], None]  # (breaker name, new state)


class _LogTransitions(pybreaker.CircuitBreakerListener):
    def state_change(
        self, cb: pybreaker.CircuitBreaker, old_state: object, new_state: object
    ) -> None:
        logger.warning(
            "circuit breaker %s: %s -> %s",
            cb.name,
            getattr(old_state, "name", old_state),
            getattr(new_state, "name", new_state),
        )


def make_breaker(
    name: str, *, failure_threshold: int, reset_timeout: float, enabled: bool = True
) -> pybreaker.CircuitBreaker:
    """A breaker whose `calling()` context manager wraps awaited calls.

    Cancellation is not a dependency failure, so it does not count towards tripping.
    Disabled (`CIRCUIT_BREAKER_ENABLED=false`) means it never opens: every call is tried.
    """
    return pybreaker.CircuitBreaker(
        fail_max=failure_threshold if enabled else sys.maxsize,
        reset_timeout=reset_timeout,
        exclude=[asyncio.CancelledError],
        listeners=[_LogTransitions()],
        name=name,
    )


class BreakerBoard(pybreaker.CircuitBreakerListener):
    """Every breaker of this worker, with when each last opened: what SREs are shown.

    Args:
        on_change: Told each breaker's name and state when added and on every change
            (the Prometheus gauge).
        clock: Wall-clock seconds (opened-at times are compared across workers).
    """

    def __init__(
        self, on_change: StateObserver | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self._breakers: list[pybreaker.CircuitBreaker] = []
        self._opened_at: dict[str, float] = {}
        self._on_change = on_change
        self._clock = clock

    def add(self, breaker: pybreaker.CircuitBreaker) -> pybreaker.CircuitBreaker:
        breaker.add_listener(self)
        self._breakers.append(breaker)
        if self._on_change is not None:
            self._on_change(str(breaker.name), breaker.current_state)
        return breaker

    def state_change(
        self, cb: pybreaker.CircuitBreaker, old_state: object, new_state: object
    ) -> None:
        state = str(getattr(new_state, "name", new_state))
        if state == "open":
            self._opened_at[str(cb.name)] = self._clock()
        if self._on_change is not None:
            self._on_change(str(cb.name), state)

    def status(self) -> list[dict[str, Any]]:
        """State, consecutive failures, opened at and next try (epoch seconds) per breaker."""
        rows = []
        for breaker in self._breakers:
            state = breaker.current_state
            opened_at = self._opened_at.get(str(breaker.name)) if state != "closed" else None
            rows.append(
                {
                    "name": breaker.name,
                    "state": state,
                    "failures": breaker.fail_counter,
                    "failureThreshold": breaker.fail_max,
                    "openedAt": opened_at,
                    "nextTryAt": opened_at + breaker.reset_timeout
                    if opened_at is not None and state == "open"
                    else None,
                }
            )
        return rows
