"""Per-document write serialisation for servers whose single-document updates are not atomic.

FerretDB v1 applies concurrent updates of one document non-atomically (measured: a
compare-and-set on `version` acknowledged 297 updates and applied 39). When the capability
record says so, every read-modify-write of one document runs under:

1. an in-process `asyncio.Lock` per document, so tasks of one worker queue up cheaply, and
2. a short-lease Redis lock (`SET NX PX` + compare-and-delete), so workers queue up too.

If the Redis lock cannot be taken and more than one worker may write, the write is refused
with 503 + Retry-After: it is never acknowledged and then lost. The lock's Redis calls go
through the Redis breaker: while it is open, a write is refused at once (Retry-After: until
the breaker's next trial) instead of each one waiting out a Redis timeout. On MongoDB the
guard is off; conditional `find_one_and_update` calls are atomic there.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, nullcontext
from typing import Any

import pybreaker
from redis.asyncio import Redis
from redis.exceptions import RedisError

from enterprise.breakers import Circuit
from enterprise.errors import DeadlineExceeded, Unavailable

logger = logging.getLogger(__name__)

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class _LocalLocks:
    """asyncio locks per key, dropped when nobody holds or waits for them."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class WriteGuard:
    """Serialises writes per document when the server needs it (see module docstring)."""

    def __init__(
        self,
        *,
        enabled: bool,
        redis: Redis | None,
        workers: int,
        namespace: str = "enterprise",
        lease_ms: int = 5000,
        wait_ms: int = 3000,
        on_refusal: Callable[[], None] | None = None,
        circuit: Circuit | None = None,
    ) -> None:
        self.enabled = enabled
        self._circuit = circuit
        self._on_refusal = on_refusal
        self._redis = redis
        self._workers = workers
        self._namespace = namespace
        self._lease_ms = lease_ms
        self._wait_s = wait_ms / 1000
        self._local = _LocalLocks()
        self._release: Any = redis.register_script(_RELEASE) if redis is not None else None
        self.refused = 0

    def _refuse(self) -> None:
        self.refused += 1
        if self._on_refusal is not None:
            self._on_refusal()

    @property
    def lease_s(self) -> float:
        return self._lease_ms / 1000

    @asynccontextmanager
    async def hold(self, collection: str, document_id: object) -> AsyncIterator[None]:
        if not self.enabled:
            yield
            return
        key = f"lock:{self._namespace}:{collection}:{document_id}"
        async with self._local.hold(key):
            token = await self._acquire(key)
            abandoned = False
            try:
                yield
            except (DeadlineExceeded, TimeoutError, asyncio.CancelledError):
                # The server may still apply the write we stopped waiting for. Keep the
                # Redis lease: the next writer waits for it to expire instead of racing it.
                abandoned = True
                raise
            finally:
                if token is not None and not abandoned:
                    await self._unlock(key, token)

    async def _acquire(self, key: str) -> str | None:
        if self._redis is None:
            if self._workers > 1:
                self._refuse()
                raise Unavailable("writes cannot be serialised across workers without Redis")
            return None
        token = secrets.token_hex(8)
        deadline = time.monotonic() + self._wait_s
        delay = 0.002
        while True:
            try:
                with self._guarded():
                    if await self._redis.set(key, token, nx=True, px=self._lease_ms):
                        return token
            except (RedisError, OSError, pybreaker.CircuitBreakerError) as ex:
                if self._workers > 1:
                    self._refuse()
                    logger.warning("write refused: cannot take the Redis write lock: %r", ex)
                    raise Unavailable(
                        "the write lock service is unavailable; the write was not applied",
                        retry_after=self._retry_after(),
                    ) from ex
                logger.warning(
                    "Redis write lock unavailable, single worker: in-process lock only: %s", ex
                )
                return None
            if time.monotonic() >= deadline:
                self._refuse()
                raise Unavailable("the document is busy; the write was not applied", retry_after=1)
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.02)

    async def _unlock(self, key: str, token: str) -> None:
        try:
            with self._guarded():
                await self._release(keys=[key], args=[token])
        except (RedisError, OSError, pybreaker.CircuitBreakerError) as ex:
            # The lease expires by itself; nothing is lost, the next writer waits a little.
            logger.warning("could not release write lock %s (lease will expire): %r", key, ex)

    def _guarded(self) -> Any:
        return self._circuit.calling() if self._circuit is not None else nullcontext()

    def _retry_after(self) -> int:
        """Until the Redis breaker's next trial when it is open; else 2 s."""
        if self._circuit is None or self._circuit.breaker.current_state == pybreaker.STATE_CLOSED:
            return 2
        return self._circuit.retry_after()
