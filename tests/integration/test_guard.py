"""The per-document write guard on the real Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
import redis.asyncio

from enterprise.breakers import Circuit, make_breaker
from enterprise.errors import DeadlineExceeded, Unavailable
from enterprise.guard import WriteGuard
from tests.conftest import free_port

pytestmark = pytest.mark.integration


def _guard(redis_client: Any, **options: Any) -> WriteGuard:
    defaults: dict[str, Any] = {
        "enabled": True,
        "redis": redis_client,
        "workers": 2,
        "namespace": f"guard_{uuid.uuid4().hex[:8]}",
    }
    return WriteGuard(**(defaults | options))


async def test_writes_to_one_document_never_overlap(redis_client: Any) -> None:
    namespace = f"guard_{uuid.uuid4().hex[:8]}"
    guards = [_guard(redis_client, namespace=namespace) for _ in range(2)]
    inside, overlaps = 0, 0

    async def write(guard: WriteGuard) -> None:
        nonlocal inside, overlaps
        async with guard.hold("clinics", "doc-1"):
            inside += 1
            overlaps += inside > 1
            await asyncio.sleep(0.002)
            inside -= 1

    await asyncio.gather(*(write(guards[i % 2]) for i in range(40)))  # two "workers"
    assert overlaps == 0


async def test_abandoned_write_keeps_the_lease_until_it_expires(redis_client: Any) -> None:
    guard = _guard(redis_client, lease_ms=600, wait_ms=3000)
    with pytest.raises(DeadlineExceeded):
        async with guard.hold("clinics", "doc-2"):
            raise DeadlineExceeded("the server may still apply this write")
    started = time.monotonic()
    async with guard.hold("clinics", "doc-2"):
        waited = time.monotonic() - started
    assert 0.3 <= waited <= 1.5  # the next writer waited for the lease, it did not race


async def test_a_busy_document_refuses_after_the_wait(redis_client: Any) -> None:
    namespace = f"guard_{uuid.uuid4().hex[:8]}"
    guard = _guard(redis_client, namespace=namespace, lease_ms=5000, wait_ms=100)
    async with guard.hold("clinics", "doc-3"):
        other = _guard(redis_client, namespace=namespace, lease_ms=5000, wait_ms=100)
        with pytest.raises(Unavailable):
            async with other.hold("clinics", "doc-3"):
                pass


async def test_the_lock_goes_through_the_redis_breaker_and_refuses_while_it_is_open() -> None:
    """Redis unreachable (a port nobody listens on), two workers: each write is refused with
    503, never made unguarded; once the Redis breaker is open, at once and without a Redis
    call, with Retry-After until its next trial."""
    unreachable = redis.asyncio.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.1, socket_connect_timeout=0.1
    )
    breaker = make_breaker("redis-guard-test", failure_threshold=2, reset_timeout=30)
    guard = _guard(unreachable, circuit=Circuit(breaker))
    entered = 0
    causes = []
    for _ in range(4):
        with pytest.raises(Unavailable) as refused:
            async with guard.hold("clinics", "doc-4"):
                entered += 1
        causes.append(type(refused.value.__cause__).__name__)
    await unreachable.aclose()
    assert entered == 0  # no write ran unguarded
    assert causes[0] == "ConnectionError"
    assert causes[2:] == ["CircuitBreakerError", "CircuitBreakerError"]
    assert breaker.current_state == "open"
    assert 29 <= refused.value.retry_after <= 30
    assert guard.refused == 4
