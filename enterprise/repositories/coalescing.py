"""Concurrent reads by `_id` coalesced into one `$in` query (group commit, DataLoader style).

Under load many requests read one document each from the same collection at the same moment,
and each `find_one` pays a round trip, the driver's work per command and the server's cost per
command. `IdReads` lets concurrent reads with the same scope and projection share one
`find({"_id": {"$in": ids}, **scope}, projection)`:

* at most one query is in flight per (scope, projection); reads that arrive meanwhile wait and
  go out together in the next one. A read with no company goes out at once, as a `find_one`.
* A read only ever shares a query *sent after it arrived*: every write acknowledged before it
  arrived is visible to it, as with a query of its own (read-your-writes holds).
* Tenants never share: the scope is part of the group, and the query carries it.

A query runs in a context of its own, not in one of its readers' (whose request may be over,
with its deadline, by the time the next query goes out): it is bounded by the latest driver
deadline among its readers (`pymongo.timeout`), each reader still waits only within its own
(`Repository.get` bounds the wait), and each reader records the query's time as its `db`
timing. It carries its first reader's request id, as a query of that request would (logs, the
query-plan gate's capture).

The query runs inside `guard` (the repository's circuit and error translation): it is one call
to the database, so the breaker counts it once, and its error, translated once, reaches every
reader of that query. A reader checks the circuit before it queues (refused at once while it
is open), and the reads still queued when it opens are refused then (`refuse_waiting`), not
held until the query in flight ends.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import time
from collections.abc import Callable, Hashable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import pymongo
from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection

from enterprise.context import current_request_id, driver_deadline, record_timing, request_id_var
from enterprise.repositories.scope import scoped

Document = dict[str, Any]
# (id, future, the reader's driver deadline, its request id)
_Reader = tuple[ObjectId, "asyncio.Future[tuple[Document | None, float]]", float | None, str | None]


async def find_ids(
    collection: AsyncCollection[Document],
    ids: list[ObjectId],
    scope: Mapping[str, Any],
    projection: Mapping[str, int] | None,
) -> dict[ObjectId, Document]:
    """The documents of `ids` within `scope`, by id: one `find_one` for one id, else one
    `$in` query (no driver errors translated: the caller's `_translated` does that)."""
    if len(ids) == 1:
        document = await collection.find_one(scoped({"_id": ids[0]}, scope), projection)
        return {} if document is None else {ids[0]: document}
    cursor = collection.find(scoped({"_id": {"$in": ids}}, scope), projection)
    return {document["_id"]: document async for document in cursor}


class _Group:
    __slots__ = ("flusher", "projection", "scope", "waiting")

    def __init__(self, scope: Mapping[str, Any], projection: Mapping[str, int] | None) -> None:
        self.scope = dict(scope)
        self.projection = None if projection is None else dict(projection)
        self.waiting: list[_Reader] = []
        self.flusher: asyncio.Task[None] | None = None


class IdReads:
    """Reads of single documents by `_id` from `collection`, coalesced while one is in flight.

    Args:
        collection: The collection read.
        guard: Made afresh around each query sent: the circuit breaker and the translation of
            driver errors (the repository's), so a query counts once however many read it.
        max_batch: Ids per query at most (more wait for the next one).
    """

    def __init__(
        self,
        collection: AsyncCollection[Document],
        *,
        guard: Callable[[], AbstractContextManager[Any]] = nullcontext,
        max_batch: int = 100,
    ) -> None:
        self._collection = collection
        self._guard = guard
        self._max_batch = max_batch
        self._groups: dict[Hashable, _Group] = {}
        self.reads = 0  # documents asked for
        self.queries = 0  # queries sent for them

    async def read(
        self, document_id: ObjectId, scope: Mapping[str, Any], projection: Mapping[str, int] | None
    ) -> Document | None:
        """The document `document_id` within `scope`, projected; None when there is none."""
        key: Hashable = (
            tuple(scope.items()),
            None if projection is None else tuple(projection.items()),
        )
        try:
            group = self._groups.get(key)
        except TypeError:  # an unhashable scope or projection value: a query of its own
            with self._guard():
                found = await find_ids(self._collection, [document_id], scope, projection)
            return found.get(document_id)
        if group is None:
            group = self._groups[key] = _Group(scope, projection)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Document | None, float]] = loop.create_future()
        group.waiting.append((document_id, future, driver_deadline(), current_request_id()))
        self.reads += 1
        if group.flusher is None:
            # A context of its own: not this request's deadline, timings or CSOT scope.
            group.flusher = loop.create_task(self._flush(key, group), context=contextvars.Context())
        document, ms = await future
        record_timing("db", ms)
        return document

    def refuse_waiting(self, error: Callable[[], BaseException]) -> None:
        """The circuit opened: the reads queued for a next query fail now with `error()`
        (refused untried, a fast 503) instead of waiting for the query in flight to end."""
        for group in self._groups.values():
            waiting, group.waiting = group.waiting, []
            for _, future, *_ in waiting:
                if not future.done():
                    future.set_exception(error())

    async def _flush(self, key: Hashable, group: _Group) -> None:
        try:
            while group.waiting:
                # Let reads that are already runnable join this query.
                await asyncio.sleep(0)
                batch = group.waiting[: self._max_batch]
                del group.waiting[: self._max_batch]
                await self._serve(group, batch)
        finally:
            group.flusher = None
            if not group.waiting and self._groups.get(key) is group:
                del self._groups[key]

    async def _serve(self, group: _Group, batch: list[_Reader]) -> None:
        ids = list(dict.fromkeys(document_id for document_id, *_ in batch))
        self.queries += 1
        # Sent on behalf of a request: its first reader's (logs, the query-plan gate).
        token = request_id_var.set(batch[0][3])
        started = time.perf_counter()
        try:
            with self._guard(), self._bound(batch):
                found = await find_ids(self._collection, ids, group.scope, group.projection)
        except asyncio.CancelledError:
            for _, future, *_ in batch:
                future.cancel()
            raise
        except Exception as ex:  # every reader gets it, translated
            for _, future, *_ in batch:
                if not future.done():
                    future.set_exception(ex)
            return
        finally:
            request_id_var.reset(token)
        ms = (time.perf_counter() - started) * 1000.0
        handed: set[ObjectId] = set()
        for document_id, future, *_ in batch:
            if future.done():  # its reader's deadline ended the wait
                continue
            document = found.get(document_id)
            if document is not None and document_id in handed:
                document = copy.deepcopy(document)  # readers may change what they are given
            handed.add(document_id)
            future.set_result((document, ms))

    def _bound(self, batch: list[_Reader]) -> Any:
        """The query's own deadline: the latest of its readers' (none if one has none); while
        the driver knows no server, no longer than server selection may take."""
        deadlines = [deadline for _, _, deadline, _ in batch]
        client = self._collection.database.client
        bound: float | None = None
        if None not in deadlines:
            latest = max(d for d in deadlines if d is not None)
            bound = max(0.001, latest - asyncio.get_running_loop().time())
        if not client.topology_description.has_known_servers:
            selection = client.options.server_selection_timeout
            bound = selection if bound is None else min(bound, selection)
        return nullcontext() if bound is None else pymongo.timeout(bound)
