"""Group concurrent key reads into one round trip, without ever reading too early.

Every cached request must read its generation counters from Redis: that read is what makes a
write on one worker visible on all the others at once. Under load, many requests want such a
read at the same moment. `BatchedReader` lets them share one `MGET`, group-commit style: at
most one read is in flight; requests that arrive meanwhile wait and go out together in the
next read. A request only ever shares a read that was *sent after it arrived*, so every write
acknowledged before the request arrived is visible to it — the same guarantee as a read of
its own, at a fraction of the per-request cost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

logger = logging.getLogger(__name__)

Fetch = Callable[[list[str]], Awaitable[Sequence[Any] | None]]
Timed = tuple[float, list[Any] | None]


class BatchedReader:
    """Reads key values through `fetch` (e.g. Redis MGET), batching concurrent callers.

    `fetch` returns the values in key order, or None when the store is unavailable; callers
    then receive None too.
    """

    def __init__(self, fetch: Fetch, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._clock = clock
        self._waiting: list[tuple[list[str], asyncio.Future[Timed]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._alone: set[asyncio.Task[None]] = set()
        self.reads = 0
        self.requests = 0

    async def read(self, keys: list[str]) -> list[Any] | None:
        return (await self.submit(keys))[1]

    def submit(self, keys: list[str]) -> asyncio.Future[Timed]:
        """Queue a read; the future resolves to `(sent, values)`, where `sent` is the `clock`
        time taken just before the shared read was sent."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Timed] = loop.create_future()
        self._waiting.append((keys, future))
        self.requests += 1
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush())
        return future

    def submit_alone(self, keys: list[str]) -> asyncio.Future[Timed]:
        """Send a read of its own at once, beside the shared one (e.g. a lease renewal,
        which must not queue behind a read in flight: under load one takes several turns
        of the event loop)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Timed] = loop.create_future()
        self.requests += 1
        task = loop.create_task(self._serve([(keys, future)]))
        self._alone.add(task)
        task.add_done_callback(self._alone.discard)
        return future

    async def aclose(self) -> None:
        """Wait for the reads in flight (their callers may be gone, e.g. lease renewals)."""
        if self._flusher is not None:
            await self._flusher
        if self._alone:
            await asyncio.gather(*self._alone)

    async def _flush(self) -> None:
        try:
            while self._waiting:
                # Let requests that are already runnable join this read.
                await asyncio.sleep(0)
                batch, self._waiting = self._waiting, []
                await self._serve(batch)
        finally:
            self._flusher = None

    async def _serve(self, batch: list[tuple[list[str], asyncio.Future[Timed]]]) -> None:
        unique = list(dict.fromkeys(key for keys, _ in batch for key in keys))
        self.reads += 1
        sent = self._clock()
        try:
            values = await self._fetch(unique)
        except Exception as ex:  # handed to every caller, who decides; never dropped
            for _, future in batch:
                if not future.done():
                    future.set_exception(ex)
            return
        found = None if values is None else dict(zip(unique, values, strict=True))
        for keys, future in batch:
            if not future.done():  # a caller may have been cancelled by its deadline
                future.set_result((sent, None if found is None else [found[key] for key in keys]))
