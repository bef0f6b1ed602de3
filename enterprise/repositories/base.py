"""Generic lean access to one collection: projected finds, keyset pages, bounded counts,
conditional writes. Subclasses only add the queries that are theirs alone."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any

import pybreaker
import pymongo
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from enterprise.breakers import Circuit
from enterprise.context import driver_deadline, request_deadline
from enterprise.cursor import SortSpec, keyset_filter, reverse
from enterprise.errors import Conflict, NotFound, PreconditionFailed
from enterprise.guard import WriteGuard
from enterprise.repositories.coalescing import IdReads, find_ids
from enterprise.repositories.errors import refused, timed_out, translated
from enterprise.repositories.scope import scoped
from indexes import DECLARED

logger = logging.getLogger(__name__)

# PyMongo checks its deadline in server selection only between waits of 0.5 s
# (MIN_HEARTBEAT_INTERVAL), so it may overrun it by that much. The bound on reads comes after
# that, so that the driver ends a read with its own error where it can (a timeout it counts
# and reports) and a cancel is the exception. A cancel there is safe on Python >= 3.12 only:
# on 3.11 a cancelled wait in server selection may run on to its full timeout, or leave the
# topology lock held for good (tests/integration/test_driver_cancellation.py).
SELECTION_OVERRUN_S = 0.55

Document = dict[str, Any]
Changes = tuple[dict[str, Any], list[str]]  # ($set fields, fields to $unset)
# Told of a new document just before it is sent; returns extra fields to store (the stamp).
InsertJournal = Callable[[Document], Awaitable[dict[str, Any]]]


def utcnow() -> datetime:
    # Millisecond precision: what BSON stores, so cursors and ETags round-trip exactly.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _read_deadline() -> float | None:
    """When a read is ended in the app: past the driver's deadline by what server selection
    may overrun it, and before the request's own deadline; never before the driver's (a
    deadline under 50 ms would otherwise end every read before it is sent)."""
    driver, request = driver_deadline(), request_deadline()
    if driver is None or request is None:
        return None
    return max(driver, min(driver + SELECTION_OVERRUN_S, request - 0.05))


class Repository:
    """One collection. `scope` filters (the tenant) are merged into every query.

    Every driver call runs in `_translated()`: driver errors become domain errors there, and
    the calls go through the MongoDB `circuit` (when given), the one breaker all
    repositories of an app share.
    """

    collection_name: str = ""
    unique_fields: Mapping[str, str] = {}

    def __init__(
        self,
        db: AsyncDatabase[Document],
        *,
        guard: WriteGuard,
        count_cap: int = 10_000,
        count_max_time_ms: int = 200,
        circuit: Circuit | None = None,
        coalesce_reads: bool = False,
    ) -> None:
        self._collection = db[self.collection_name]
        # Concurrent `get`s share one `$in` query (enterprise/repositories/coalescing.py).
        self._id_reads = (
            IdReads(self._collection, guard=self._query_guard) if coalesce_reads else None
        )
        if circuit is not None and self._id_reads is not None:
            reads = self._id_reads
            circuit.when_opened(lambda: reads.refuse_waiting(lambda: refused(circuit)))
        self._client = db.client
        self._guard = guard
        self._circuit = circuit
        self._count_cap = count_cap
        self._count_max_time_ms = count_max_time_ms

    @asynccontextmanager
    async def _translated(
        self, *, write: bool = False, bounded: bool | None = None
    ) -> AsyncIterator[None]:
        """`write`: a lost connection leaves the outcome unknown (504), not refused (503).

        `bounded` (default: reads): the call also ends, in the app, shortly after the driver's
        share of the request's deadline. The driver's own deadline (CSOT) does not bound everything
        it may wait for: a read retried on a new connection to a hung server waits out that
        connection's handshake for `connectTimeoutMS`, past the deadline, and the request's
        outer cancel then ends it as a bare 504 that stale-if-error never sees. Writes (the
        audit journal's too) are left to the driver: ending one early would turn a known
        outcome into an unknown one.
        """
        if bounded is None:
            bounded = not write
        with translated(
            self.collection_name,
            self.unique_fields,
            self._circuit,
            self._selection_bound(),
            write=write,
        ):
            if not bounded:
                yield
                return
            async with asyncio.timeout_at(_read_deadline()):
                yield

    def _query_guard(self) -> AbstractContextManager[None]:
        """What `_translated` does around a driver call, for a query shared by several reads
        (`IdReads`): the circuit and the translation of errors, once per query."""
        return translated(
            self.collection_name, self.unique_fields, self._circuit, self._selection_bound()
        )

    def _selection_bound(self) -> AbstractContextManager[Any]:
        """Under a request deadline (`pymongo.timeout`) the driver waits for a server for all
        that is left of it (30 s), not `serverSelectionTimeoutMS`. While it knows no server
        (the one it had went away), bound the call by that setting instead, so it fails
        fast and counts towards the breaker; once it knows one, only the deadline bounds."""
        if self._client.topology_description.has_known_servers:
            return nullcontext()
        return pymongo.timeout(self._client.options.server_selection_timeout)

    async def get(
        self, document_id: ObjectId, scope: Mapping[str, Any], projection: Mapping[str, int] | None
    ) -> Document | None:
        reads = self._id_reads
        if reads is None:
            async with self._translated():
                return await self._collection.find_one(
                    scoped({"_id": document_id}, scope), projection
                )
        # Coalesced: the shared query goes through the circuit and is translated once for all
        # its readers (`_query_guard`); each reader only bounds its own wait, as `_translated`
        # bounds a read. (Per reader, that machinery cost 20-30 µs: a tenth of an uncached GET.)
        if self._circuit is not None:
            try:
                self._circuit.check()  # refused at once while open, as `_translated` refuses
            except pybreaker.CircuitBreakerError as ex:
                raise refused(self._circuit) from ex
        deadline = _read_deadline()
        try:
            if deadline is None:
                return await reads.read(document_id, scope, projection)
            async with asyncio.timeout_at(deadline):
                return await reads.read(document_id, scope, projection)
        except TimeoutError as ex:
            raise timed_out() from ex

    async def exists(self, query: Mapping[str, Any]) -> bool:
        async with self._translated():
            return await self._collection.find_one(query, {"_id": 1}) is not None

    async def by_ids(
        self, ids: Sequence[ObjectId], scope: Mapping[str, Any], projection: Mapping[str, int]
    ) -> dict[ObjectId, Document]:
        """One `$in` round trip for a batch of ids (DataLoader style, never N+1)."""
        if not ids:
            return {}
        async with self._translated():
            return await find_ids(self._collection, list(ids), scope, projection)

    async def page(
        self,
        query: Mapping[str, Any],
        sort: SortSpec,
        limit: int,
        projection: Mapping[str, int],
        *,
        after: tuple[Any, ...] | None = None,
        backwards: bool = False,
    ) -> list[Document]:
        """Up to `limit + 1` documents after a keyset boundary (the extra one means "more")."""
        order = reverse(sort) if backwards else sort
        conditions: dict[str, Any] = dict(query)
        if after is not None:
            keyset = keyset_filter(order, after)
            conditions = {"$and": [conditions, keyset]} if conditions else keyset
        async with self._translated():
            cursor = self._collection.find(
                conditions, projection, sort=list(order), limit=limit + 1
            )
            documents = await cursor.to_list(limit + 1)
        return documents

    async def stream(
        self,
        query: Mapping[str, Any],
        sort: SortSpec,
        projection: Mapping[str, int],
        batch_size: int,
    ) -> AsyncGenerator[list[Document], None]:
        """Every matching document, in batches of `batch_size` as the server sends them.

        One batch is read ahead: the next `getMore` is in flight while the caller encodes
        and sends the current batch, so the database's time overlaps the caller's instead of
        adding to it. Memory stays at two batches whatever the result's size. Closing the
        generator early (a client gone mid-export) closes the server-side cursor at once, not
        at its timeout.

        Dates come back naive (UTC, as BSON stores them): the documents are for output only
        (`dumps` writes naive times as UTC), and an aware datetime costs the decoder a Python
        `tzinfo` per value: up to twice the decoding time of an assignment, which has three
        (docs/benchmarks.md, the NDJSON export).
        """
        # Refused while the breaker is open, but not held as one call: a stream lasts minutes
        # and would hold the trial. Nor bounded by the server selection timeout: that would
        # bound the whole export.
        collection = self._collection.with_options(
            codec_options=self._collection.codec_options.with_options(tz_aware=False)
        )
        with translated(self.collection_name, self.unique_fields, self._circuit, hold=False):
            cursor = collection.find(query, projection, sort=list(sort))
            cursor.batch_size(batch_size)
            # to_list takes what the server sent in one step; iterating the cursor would
            # cost an awaited call per document.
            ahead = asyncio.ensure_future(cursor.to_list(batch_size))
            try:
                while batch := await ahead:
                    ahead = asyncio.ensure_future(cursor.to_list(batch_size))
                    # A task runs only once the loop gets control: give it that now, so the
                    # getMore is on the wire before the caller's work on this batch, not
                    # after it (the caller's sends need not yield, granian's often do not).
                    await asyncio.sleep(0)
                    yield batch
            finally:
                ahead.cancel()  # a no-op once it has finished
                await asyncio.wait([ahead])  # let it unwind before the cursor closes
                if not ahead.cancelled() and (error := ahead.exception()) is not None:
                    # The caller stopped before this batch was wanted: nobody will read it.
                    logger.info("export read-ahead failed after its reader stopped: %r", error)
                await cursor.close()

    async def count(self, query: Mapping[str, Any], exact: bool) -> tuple[int | None, bool]:
        """(value, exact). Unfiltered estimates read metadata; filtered ones stop at the cap."""
        if exact or not query:
            async with self._translated():
                if exact:
                    return await self._collection.count_documents(query), True
                return await self._collection.estimated_document_count(), False
        async with self._translated():
            try:
                # pymongo.timeout sends maxTimeMS and also stops waiting itself, so the bound
                # holds even on a server that ignores maxTimeMS (FerretDB v1 does).
                with pymongo.timeout(self._count_max_time_ms / 1000):
                    value = await self._collection.count_documents(query, limit=self._count_cap)
            except PyMongoError as ex:
                if not ex.timeout:
                    raise
                # Our own bound ran out, routinely on large data: not a failure of the server
                # (caught inside the breaker's block, so it does not count towards tripping).
                # The page is still worth having: report an unknown count, not a failed list.
                return None, False
        return value, value < self._count_cap

    async def insert(
        self,
        document: Document,
        *,
        journal: InsertJournal | None = None,
        stamped: tuple[str, ...] = (),
    ) -> Document:
        """Insert at version 1. `journal` hears of the document just before it is sent and
        names fields to store with it. `stamped` fields get the creation instant itself
        (equal to `createdAt`, never a millisecond apart)."""
        now = utcnow()
        stored = {
            "_id": ObjectId(),
            **document,
            **dict.fromkeys(stamped, now),
            "createdAt": now,
            "updatedAt": now,
            "version": 1,
        }
        if journal is not None:
            stored.update(await journal(stored))
        try:
            async with self._translated(write=True):
                await self._collection.insert_one(stored)
        except Conflict as ex:
            culprit = None if ex.field else await self._unique_culprit(stored)
            if culprit is None:
                raise
            raise culprit from ex
        return stored

    async def _unique_culprit(self, document: Document) -> Conflict | None:
        """The unique rule `document` collides with, found by asking for the holder.

        FerretDB reports a duplicate insert as E11000 without the index name or key pattern,
        so the error alone cannot say which field to name (assignments have two rules).
        """
        for model in DECLARED.get(self.collection_name, []):
            spec = model.document
            field = self.unique_fields.get(spec["name"])
            if field is None or not spec.get("unique"):
                continue
            keys = list(spec["key"])
            if spec.get("sparse") and any(key not in document for key in keys):
                continue
            holder = {key: document.get(key) for key in keys}
            if await self.exists({**holder, "_id": {"$ne": document["_id"]}}):
                what = self.collection_name[:-1]
                return Conflict(f"a {what} with this {field} already exists", field=field)
        return None

    async def update(
        self,
        document_id: ObjectId,
        scope: Mapping[str, Any],
        change: Callable[[Document], Changes],
        check: Callable[[Document], None],
        attempts: int = 20,
        *,
        stamp: Mapping[str, Any] | None = None,
    ) -> Document:
        """Read, change and compare-and-set on `version`, under the write guard.

        `stamp` is set with the change (the audit record's id).

        `check` raises `PreconditionFailed` when the client's If-Match no longer holds. When
        the version moved under us without an If-Match from the client, we simply retry.
        Under the guard the write must finish well within the lock's lease; without it (an
        atomic server) only the request's deadline bounds the retries: contending writers on
        one document queue on its row lock there, and 120 of them take seconds, not a lease.
        """
        async with self._guard.hold(self.collection_name, document_id):
            within_lease = (
                pymongo.timeout(self._guard.lease_s * 0.8) if self._guard.enabled else nullcontext()
            )
            with within_lease:
                for attempt in range(attempts):
                    current = await self.get(document_id, scope, None)
                    if current is None:
                        raise NotFound(f"{self.collection_name[:-1]} {document_id} was not found")
                    check(current)
                    to_set, to_unset = change(current)
                    update: dict[str, Any] = {
                        "$set": {**to_set, **(stamp or {}), "updatedAt": utcnow()},
                        "$inc": {"version": 1},
                    }
                    if to_unset:
                        update["$unset"] = dict.fromkeys(to_unset, "")
                    try:
                        async with self._translated(write=True):
                            updated = await self._collection.find_one_and_update(
                                scoped({"_id": document_id, "version": current["version"]}, scope),
                                update,
                                return_document=ReturnDocument.AFTER,
                            )
                    except Conflict as ex:
                        after = {k: v for k, v in current.items() if k not in to_unset}
                        culprit = None if ex.field else await self._unique_culprit(after | to_set)
                        if culprit is None:
                            raise
                        raise culprit from ex
                    if updated is not None:
                        return updated
                    # Lost a compare-and-set race (atomic servers, no guard): back off with
                    # jitter, doubling up to 128 ms, so contending writers spread out. Linear
                    # steps of 2 ms were too close together where writers queue on a row lock
                    # (FerretDB v2): 25 of 120 concurrent PATCHes lost all 20 rounds.
                    await asyncio.sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 6)))
        raise Conflict("the document kept changing during the update; retry")

    async def delete(
        self,
        document_id: ObjectId,
        scope: Mapping[str, Any],
        check: Callable[[Document], None],
    ) -> Document:
        async with self._guard.hold(self.collection_name, document_id):
            current = await self.get(document_id, scope, None)
            if current is None:
                raise NotFound(f"{self.collection_name[:-1]} {document_id} was not found")
            check(current)
            async with self._translated(write=True):
                result = await self._collection.delete_one(
                    scoped({"_id": document_id, "version": current["version"]}, scope)
                )
            if result.deleted_count != 1:
                raise PreconditionFailed("the document changed while it was being deleted")
            return current

    async def aggregate(self, pipeline: list[dict[str, Any]]) -> list[Document]:
        async with self._translated():
            cursor = await self._collection.aggregate(pipeline)
            return await cursor.to_list(None)

    async def insert_many(self, documents: list[Document]) -> int:
        """Bulk unordered insert (seeding); returns how many landed."""
        async with self._translated(write=True):
            result = await self._collection.insert_many(documents, ordered=False)
        return len(result.inserted_ids)
