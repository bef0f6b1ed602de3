"""Circuit's own logic: stall detection and the trial call (no servers: blocks that wait on
events stand for calls in flight; the real outages are in tests/faults)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pybreaker
import pytest

from enterprise.breakers import Circuit, make_breaker

pytestmark = pytest.mark.unit


async def _call_until(circuit: Circuit, released: asyncio.Event) -> None:
    """A call through the circuit that is in flight until `released` is set."""
    with circuit.calling():
        await released.wait()


async def test_stalled_calls_and_a_failed_ping_open_it_a_ping_that_answers_does_not() -> None:
    answers = True
    pings = 0
    now = 0.0

    async def probe() -> None:
        nonlocal pings
        pings += 1
        if not answers:
            raise TimeoutError("no answer within 1 s")

    breaker = make_breaker("t", failure_threshold=5, reset_timeout=60)
    circuit = Circuit(breaker, probe=probe, stall_s=2.0, monotonic=lambda: now)
    release = asyncio.Event()

    async def call_at(moment: float) -> None:
        nonlocal now
        now = moment
        with circuit.calling():
            pass
        await asyncio.sleep(0)  # let a ping it started run
        await asyncio.sleep(0)

    waiting = [asyncio.ensure_future(_call_until(circuit, release)) for _ in range(3)]
    await asyncio.sleep(0)
    await call_at(1.9)  # not stalled yet
    await call_at(4.0)  # stalled, and nothing finished since 1.9: ping; it answers
    await call_at(4.5)  # a call finished at 4.0: nothing to ask
    assert (pings, breaker.current_state) == (1, "closed")

    answers = False
    await call_at(6.0)  # the last call finished at 4.5: not stalled for 2 s yet
    assert (pings, breaker.current_state) == (1, "closed")
    await call_at(8.5)  # 2.5 s without a finished call: ping, no answer
    assert (pings, breaker.current_state) == (2, "open")
    with pytest.raises(pybreaker.CircuitBreakerError), circuit.calling():
        pass
    release.set()
    await asyncio.gather(*waiting)


def test_retry_after_counts_down_to_the_trial() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    breaker = make_breaker("t", failure_threshold=1, reset_timeout=5)
    circuit = Circuit(breaker, clock=lambda: now)
    assert circuit.retry_after() == 1  # closed
    breaker.open()
    breaker._state_storage.opened_at = now - timedelta(seconds=1.5)
    assert circuit.retry_after() == 4  # 3.5 s left, rounded up
    breaker._state_storage.opened_at = now - timedelta(seconds=9)
    assert circuit.retry_after() == 1


async def test_a_disabled_breaker_never_opens_and_has_no_probe() -> None:
    breaker = make_breaker("t", failure_threshold=1, reset_timeout=5, enabled=False)
    for _ in range(50):
        with pytest.raises(ConnectionError), breaker.calling():
            raise ConnectionError("refused")
    assert breaker.current_state == "closed"


def test_admit_refuses_while_open_and_holds_no_call() -> None:
    breaker = make_breaker("t", failure_threshold=1, reset_timeout=60)
    circuit = Circuit(breaker)
    circuit.admit()  # closed: admitted
    breaker.open()
    with pytest.raises(pybreaker.CircuitBreakerError):
        circuit.admit()


async def test_check_refuses_as_calling_would_and_leaves_a_due_trial_to_the_call() -> None:
    """A read sharing a query checks the circuit, and only the query is a call: refused at
    once while open, passed while a trial is due (the shared query is that trial), refused
    while the trial is in flight; closed, it watches for a stall as a call starting does."""
    now = datetime(2026, 12, 1, tzinfo=UTC)
    pings = 0

    async def probe() -> None:
        nonlocal pings
        pings += 1
        raise TimeoutError("no answer within 1 s")

    moment = 0.0
    breaker = make_breaker("t", failure_threshold=1, reset_timeout=5)
    circuit = Circuit(
        breaker, probe=probe, stall_s=2.0, clock=lambda: now, monotonic=lambda: moment
    )
    circuit.check()  # closed, nothing in flight
    release = asyncio.Event()
    waiting = asyncio.ensure_future(_call_until(circuit, release))
    await asyncio.sleep(0)
    moment = 3.0
    circuit.check()  # the call in flight for 3 s, none finished: the stall watch pings
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert (pings, breaker.current_state) == (1, "open")

    breaker._state_storage.opened_at = now - timedelta(seconds=1)
    with pytest.raises(pybreaker.CircuitBreakerError):
        circuit.check()  # open, the trial 4 s away: refused untried
    breaker._state_storage.opened_at = now - timedelta(seconds=6)
    circuit.check()  # the trial is due: left to the call
    trial = asyncio.Event()
    trying = asyncio.ensure_future(_call_until(circuit, trial))
    await asyncio.sleep(0)
    with pytest.raises(pybreaker.CircuitBreakerError):
        circuit.check()  # a trial in flight: the others fail fast
    trial.set()
    await trying
    assert breaker.current_state == "closed"
    circuit.check()
    release.set()
    await waiting
