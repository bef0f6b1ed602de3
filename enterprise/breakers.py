"""Circuit breakers (pybreaker) shared by the Redis tier now and the MongoDB path later."""

from __future__ import annotations

import asyncio
import logging
import sys

import pybreaker

logger = logging.getLogger(__name__)


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
