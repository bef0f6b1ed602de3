"""Circuit breakers (pybreaker) around Redis (cache tier, write guard) and MongoDB (repositories).

pybreaker 1.4.1 has no asyncio support of its own: its `calling()` context manager wraps an
awaited block, which is how every breaker here is used. `Circuit` adds what the MongoDB path
needs on top: one trial call at a time while half-open, and the seconds until that trial.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pybreaker

logger = logging.getLogger(__name__)
StateObserver = Callable[[str, str], None]  # (breaker name, new state)


class _LogTransitions(pybreaker.CircuitBreakerListener):
    def state_change(
        self, cb: pybreaker.CircuitBreaker, old_state: object, new_state: object
    ) -> None:
        if getattr(old_state, "name", old_state) == getattr(new_state, "name", new_state):
            return  # re-opened by a call that began before it opened and failed since
        logger.warning(
            "circuit breaker %s: %s -> %s",
            cb.name,
            getattr(old_state, "name", old_state),
            getattr(new_state, "name", new_state),
        )


class _WhenOpened(pybreaker.CircuitBreakerListener):
    def __init__(self, opened: Callable[[], None]) -> None:
        self._opened = opened

    def state_change(
        self, cb: pybreaker.CircuitBreaker, old_state: object, new_state: object
    ) -> None:
        if getattr(new_state, "name", new_state) == pybreaker.STATE_OPEN:
            self._opened()


def make_breaker(
    name: str,
    *,
    failure_threshold: int,
    reset_timeout: float,
    enabled: bool = True,
    counts: Callable[[BaseException], bool] | None = None,
) -> pybreaker.CircuitBreaker:
    """A breaker whose `calling()` context manager wraps awaited calls.

    Cancellation is not a dependency failure, so it does not count towards tripping; nor does
    an error for which `counts` (when given) says False: the dependency answered, the answer
    was "no" (a duplicate key, say). pybreaker then treats the call as a success: it resets
    the count of consecutive failures, and closes a half-open breaker.
    Disabled (`CIRCUIT_BREAKER_ENABLED=false`) means it never opens: every call is tried.
    """
    exclude: list[Any] = [asyncio.CancelledError]
    if counts is not None:
        exclude.append(lambda ex: not counts(ex))
    return pybreaker.CircuitBreaker(
        fail_max=failure_threshold if enabled else sys.maxsize,
        reset_timeout=reset_timeout,
        exclude=exclude,
        listeners=[_LogTransitions()],
        name=name,
    )


class Circuit:
    """A breaker for a dependency many requests wait on at once (MongoDB).

    Two things pybreaker does not do:

    * **One trial at a time.** pybreaker lets *every* call through while half-open: with 50
      requests in flight, 50 would each wait out a server selection against a server that
      may still be down. Here one trial call goes through; the others fail fast until it has
      settled the state.
    * **A hung server opens it.** A stopped server refuses connections and calls fail within
      the server selection timeout; a hung one (SIGSTOP, a stalled disk) accepts them and
      never answers, so calls only fail at their deadline (30 s): a consecutive-failure
      count would take N × 30 s. So when a call starts while calls have been in flight for
      `stall_s` with none finishing meanwhile, `probe` (a ping with a short timeout) is
      sent once; if it fails, the breaker opens at once. A ping that answers means the
      calls are merely slow (a long report): nothing happens.

    Calls that began before it opened are left to finish: they end when the server answers
    again or at their deadline (a write cancelled mid-flight would leave its outcome unknown).

    Args:
        breaker: From `make_breaker`.
        probe: Awaits a cheap round trip, raising on failure; None: no stall detection.
        stall_s: How long calls may run with none finishing before the probe is sent.
    """

    def __init__(
        self,
        breaker: pybreaker.CircuitBreaker,
        *,
        probe: Callable[[], Awaitable[object]] | None = None,
        stall_s: float = 2.0,
        clock: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.breaker = breaker
        self._probe = probe
        self._stall_s = stall_s
        self._clock = clock or (lambda: datetime.now(UTC))
        self._monotonic = monotonic
        self._trial = False
        self._started: dict[int, float] = {}  # in-flight calls by ticket, oldest first
        self._tickets = itertools.count()
        self._last_finished = self._monotonic()
        self._probing: asyncio.Task[None] | None = None
        self._on_open: list[Callable[[], None]] = []
        breaker.add_listener(_WhenOpened(self._opened))

    def when_opened(self, callback: Callable[[], None]) -> None:
        """Have `callback` called (synchronously, by the call or probe that opened it) each
        time the breaker opens: callers waiting to be sent refuse themselves then."""
        self._on_open.append(callback)

    def _opened(self) -> None:
        for callback in self._on_open:
            try:
                callback()
            except Exception:  # one callback's bug must not spare the others or the caller
                logger.exception(
                    "circuit breaker %s: a callback on opening failed", self.breaker.name
                )

    @contextmanager
    def calling(self) -> Iterator[None]:
        """Run the block as a guarded call; `pybreaker.CircuitBreakerError` when refused."""
        trial = self.breaker.current_state != pybreaker.STATE_CLOSED
        if trial and self._trial:
            raise pybreaker.CircuitBreakerError("a trial call is in flight, circuit breaker open")
        now = self._monotonic()
        if not trial:
            self._watch(now)
        # No await between the check and the set: one task per event loop gets the trial.
        self._trial = self._trial or trial
        ticket = next(self._tickets)
        self._started[ticket] = now
        try:
            with self.breaker.calling():
                yield
        finally:
            del self._started[ticket]
            self._last_finished = self._monotonic()
            if trial:
                self._trial = False

    def check(self) -> None:
        """For a caller about to wait for a call made on its behalf (a read sharing a query,
        enterprise/repositories/coalescing.py), what entering `calling` would do before the
        call: `pybreaker.CircuitBreakerError` at once while a call would be refused untried
        (open before its trial is due, or a trial in flight), and the stall watch. A trial
        that is due is left to that call."""
        state = self.breaker.current_state
        if state == pybreaker.STATE_CLOSED:
            self._watch(self._monotonic())
            return
        if self._trial:
            raise pybreaker.CircuitBreakerError("a trial call is in flight, circuit breaker open")
        left = self._until_trial()
        if state == pybreaker.STATE_OPEN and left is not None and left > 0:
            raise pybreaker.CircuitBreakerError("circuit breaker open")

    def admit(self) -> None:
        """Refuse while not closed, without holding a call: for a call too long to be the
        trial (an export would hold every other call refused until it ended)."""
        if self.breaker.current_state != pybreaker.STATE_CLOSED:
            raise pybreaker.CircuitBreakerError("circuit breaker open")

    def _watch(self, now: float) -> None:
        if self._probe is None or self._probing is not None or not self._started:
            return
        oldest = next(iter(self._started.values()))
        if now - oldest < self._stall_s or now - self._last_finished < self._stall_s:
            return
        self._probing = asyncio.get_running_loop().create_task(self._check(now - oldest))

    async def _check(self, stalled_s: float) -> None:
        assert self._probe is not None
        try:
            await self._probe()
            self._last_finished = self._monotonic()  # it answers: probe again after stall_s
        except Exception as ex:  # the answer we act on: the server does not answer a ping
            if self.breaker.current_state == pybreaker.STATE_CLOSED:
                logger.warning(
                    "circuit breaker %s: %d calls stalled for %.1f s and a ping failed (%r): "
                    "opening",
                    self.breaker.name,
                    len(self._started),
                    stalled_s,
                    ex,
                )
                self.breaker.open()
        finally:
            self._probing = None

    def retry_after(self) -> int:
        """Whole seconds until the next trial call may go through (at least 1)."""
        left = self._until_trial()
        if left is None or self.breaker.current_state == pybreaker.STATE_CLOSED:
            return 1
        return max(1, math.ceil(left))

    def _until_trial(self) -> float | None:
        """Seconds from now until the reset timeout lets a trial through (None: never opened)."""
        opened_at = self.breaker._state_storage.opened_at  # pybreaker has no public getter
        if opened_at is None:
            return None
        return (opened_at - self._clock()).total_seconds() + self.breaker.reset_timeout


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
