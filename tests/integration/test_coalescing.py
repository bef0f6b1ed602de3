"""Concurrent reads by id share one `$in` query (enterprise/repositories/coalescing.py), on
the real server: right documents, fewer queries, tenants apart, writes always visible."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pybreaker
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

from enterprise.breakers import Circuit, make_breaker
from enterprise.context import RequestTimings, current_request_id, request_id_var, timings_var
from enterprise.errors import Unavailable
from enterprise.guard import WriteGuard
from enterprise.repositories.clinics import ClinicsRepository
from enterprise.repositories.errors import is_outage
from indexes import capture
from tests.conftest import MONGODB_URI

pytestmark = pytest.mark.integration


@contextmanager
def bound_context(request_id: str, timings: RequestTimings) -> Iterator[None]:
    """The block runs as part of request `request_id`, as the request-context wrapper
    makes the app's code run (middleware/request_context.py)."""
    id_token = request_id_var.set(request_id)
    timings_token = timings_var.set(timings)
    try:
        yield
    finally:
        timings_var.reset(timings_token)
        request_id_var.reset(id_token)


def _clinics(mongo: AsyncMongoClient[Any], database: str) -> ClinicsRepository:
    guard = WriteGuard(enabled=False, redis=None, workers=1)
    return ClinicsRepository(mongo[database], guard=guard, coalesce_reads=True)


async def _seed(repo: ClinicsRepository, organization: ObjectId, n: int) -> list[ObjectId]:
    ids = []
    for i in range(n):
        clinic = await repo.insert(
            {"organizationId": organization, "name": f"C{i}", "code": f"C{i:03d}-{organization}",
             "nameKey": f"c{i}", "status": "ACTIVE"}
        )  # fmt: skip
        ids.append(clinic["_id"])
    return ids


async def test_concurrent_reads_share_queries_and_each_gets_its_document(
    mongo: AsyncMongoClient[Any], database: str
) -> None:
    repo = _clinics(mongo, database)
    organization = ObjectId()
    ids = await _seed(repo, organization, 24)
    missing = ObjectId()
    reads = repo._id_reads
    assert reads is not None
    before = reads.queries

    asked = [*ids, missing, ids[0]]
    found = await asyncio.gather(*(repo.get(i, {}, {"name": 1, "version": 1}) for i in asked))

    assert [d["_id"] if d else None for d in found] == [*ids, None, ids[0]]
    assert [d["name"] for d in found[:24]] == [f"C{i}" for i in range(24)]
    assert set(found[0]) == {"_id", "name", "version"}  # the projection applied
    assert found[0] == found[-1]
    assert found[0] is not found[-1]
    queries = reads.queries - before
    assert queries < len(asked) / 4, f"{queries} queries for {len(asked)} reads"


async def test_a_lone_read_is_not_delayed_and_uses_its_own_query(
    mongo: AsyncMongoClient[Any], database: str
) -> None:
    repo = _clinics(mongo, database)
    [clinic] = await _seed(repo, ObjectId(), 1)
    reads = repo._id_reads
    assert reads is not None
    before = reads.queries
    timings = RequestTimings()
    with bound_context("r1", timings):
        document = await repo.get(clinic, {}, None)
    assert document is not None
    assert document["_id"] == clinic
    assert reads.queries - before == 1
    assert timings.db_calls == 1
    assert timings.db_ms > 0


async def test_tenants_never_share_a_query_or_see_each_others_documents(
    mongo: AsyncMongoClient[Any], database: str
) -> None:
    repo = _clinics(mongo, database)
    a, b = ObjectId(), ObjectId()
    ids_a, ids_b = await _seed(repo, a, 5), await _seed(repo, b, 5)
    in_a, in_b = {"organizationId": a}, {"organizationId": b}

    asked = [(i, in_a) for i in ids_a + ids_b] + [(i, in_b) for i in ids_a + ids_b]
    found = await asyncio.gather(*(repo.get(i, scope, None) for i, scope in asked))

    expected = ids_a + [None] * 5 + [None] * 5 + ids_b
    assert [d["_id"] if d else None for d in found] == expected


async def test_a_write_acknowledged_before_a_read_is_always_seen(
    mongo: AsyncMongoClient[Any], database: str
) -> None:
    """Readers keep a query in flight all along; after each acknowledged update, a read must
    return that version or a later one, never the one before."""
    repo = _clinics(mongo, database)
    ids = await _seed(repo, ObjectId(), 8)
    target = ids[0]
    stop = asyncio.Event()

    async def background() -> None:
        while not stop.is_set():
            await asyncio.gather(*(repo.get(i, {}, {"version": 1}) for i in ids))

    readers = [asyncio.create_task(background()) for _ in range(4)]
    try:
        for n in range(15):
            updated = await repo.update(
                target, {}, lambda _, n=n: ({"name": f"v{n}"}, []), lambda _: None
            )
            seen = await repo.get(target, {}, {"version": 1, "name": 1})
            assert seen is not None
            assert (seen["version"], seen["name"]) == (updated["version"], f"v{n}")
    finally:
        stop.set()
        await asyncio.gather(*readers)


async def test_an_error_reaches_every_reader_of_the_query_and_the_next_query_works(
    mongo: AsyncMongoClient[Any], database: str
) -> None:
    repo = _clinics(mongo, database)
    ids = await _seed(repo, ObjectId(), 4)
    bad = {"name": 1, "code": 0}  # inclusion and exclusion mixed: the server refuses it
    outcomes = await asyncio.gather(*(repo.get(i, {}, bad) for i in ids), return_exceptions=True)
    assert all(isinstance(o, OperationFailure) for o in outcomes), outcomes
    again = await asyncio.gather(*(repo.get(i, {}, {"name": 1}) for i in ids))
    assert [d["_id"] for d in again] == ids


def _unreachable(
    database: str, *, selection_ms: int, failure_threshold: int
) -> tuple[AsyncMongoClient[Any], pybreaker.CircuitBreaker, ClinicsRepository]:
    """A coalescing repository, with a breaker, on a client of a port nothing listens on:
    each query fails once server selection (`selection_ms`) gives up."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        "mongodb://127.0.0.1:1/",
        serverSelectionTimeoutMS=selection_ms,
        connectTimeoutMS=selection_ms,
    )
    breaker = make_breaker(
        "mongodb", failure_threshold=failure_threshold, reset_timeout=60, counts=is_outage
    )
    guard = WriteGuard(enabled=False, redis=None, workers=1)
    repo = ClinicsRepository(
        client[database], guard=guard, circuit=Circuit(breaker), coalesce_reads=True
    )
    return client, breaker, repo


async def test_a_shared_query_is_one_call_to_the_breaker_and_readers_are_refused_while_open(
    database: str,
) -> None:
    """A query shared by six reads is one call to the database: it counts once towards
    tripping the breaker, and once the breaker is open the reads are refused at once (a fast
    503), not queued behind a query. (Nothing listens on port 1: each query fails fast.)"""
    client, breaker, repo = _unreachable(database, selection_ms=200, failure_threshold=2)
    reads = repo._id_reads
    assert reads is not None
    ids = [ObjectId() for _ in range(6)]
    try:
        for failures in (1, 2):
            outcomes = await asyncio.gather(
                *(repo.get(i, {}, None) for i in ids), return_exceptions=True
            )
            assert all(isinstance(o, Unavailable) for o in outcomes), outcomes
            assert reads.queries == failures  # six readers, one query
        assert breaker.current_state == "open"
        loop = asyncio.get_running_loop()
        began = loop.time()
        outcomes = await asyncio.gather(
            *(repo.get(i, {}, None) for i in ids), return_exceptions=True
        )
        assert all(isinstance(o, Unavailable) and "breaker open" in o.detail for o in outcomes)
        assert loop.time() - began < 0.05
        assert reads.queries == 2  # refused before any query
    finally:
        await client.close()


async def test_reads_queued_behind_a_query_are_refused_as_soon_as_the_breaker_opens(
    database: str,
) -> None:
    """Reads waiting for the next query fail the moment the breaker opens (a fast 503), not
    when the query in flight ends. (Nothing listens on port 1: it waits out server selection.)"""
    client, breaker, repo = _unreachable(database, selection_ms=1000, failure_threshold=5)
    loop = asyncio.get_running_loop()
    try:
        first = asyncio.ensure_future(repo.get(ObjectId(), {}, None))
        await asyncio.sleep(0.05)  # its query is in flight, selecting a server for 1 s
        queued = [asyncio.ensure_future(repo.get(ObjectId(), {}, None)) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert not any(read.done() for read in (first, *queued))
        began = loop.time()
        breaker.open()
        outcomes = await asyncio.gather(*queued, return_exceptions=True)
        assert loop.time() - began < 0.05
        assert all(isinstance(o, Unavailable) and "breaker open" in o.detail for o in outcomes)
        with pytest.raises(Unavailable):  # tried, and failed at the end of server selection
            await first
    finally:
        await client.close()


async def test_a_reader_cancelled_by_its_deadline_leaves_the_others_their_answer(
    mongo: AsyncMongoClient[Any], database: str
) -> None:
    repo = _clinics(mongo, database)
    ids = await _seed(repo, ObjectId(), 6)

    async def impatient() -> None:
        async with asyncio.timeout(0):
            await repo.get(ids[0], {}, None)

    results = await asyncio.gather(
        impatient(), *(repo.get(i, {}, None) for i in ids[1:]), return_exceptions=True
    )
    assert isinstance(results[0], TimeoutError)
    assert [d["_id"] for d in results[1:]] == ids[1:]


async def test_a_scope_that_cannot_be_grouped_gets_a_query_of_its_own(
    mongo: AsyncMongoClient[Any], database: str
) -> None:
    repo = _clinics(mongo, database)
    organization = ObjectId()
    [clinic] = await _seed(repo, organization, 1)
    reads = repo._id_reads
    assert reads is not None
    before = reads.reads
    scope = {"organizationId": {"$in": [organization]}}  # a dict value: not hashable
    document = await repo.get(clinic, scope, None)
    assert document is not None
    assert document["_id"] == clinic
    assert await repo.get(clinic, {"organizationId": {"$in": [ObjectId()]}}, None) is None
    assert reads.reads == before  # never queued


async def test_a_shared_query_is_sent_on_behalf_of_a_request(
    mongo: AsyncMongoClient[Any], database: str
) -> None:
    """The query-plan gate captures what is sent while a request is served (a request id in
    the context): a shared query, sent from a task of its own, carries its first reader's."""
    recorder = capture.ShapeRecorder(accept=lambda: current_request_id() is not None)
    client: AsyncMongoClient[Any] = AsyncMongoClient(MONGODB_URI, event_listeners=[recorder])
    try:
        guard = WriteGuard(enabled=False, redis=None, workers=1)
        repo = ClinicsRepository(client[database], guard=guard, coalesce_reads=True)
        ids = await _seed(_clinics(mongo, database), ObjectId(), 6)

        async def read(i: ObjectId, n: int) -> None:
            with bound_context(f"request-{n}", RequestTimings()):
                assert await repo.get(i, {}, {"name": 1}) is not None

        await asyncio.gather(*(read(i, n) for n, i in enumerate(ids)))
    finally:
        await client.close()
    finds = [shape for shape, _ in recorder if shape.operation == "find"]
    assert finds, "no find captured: the shared query ran outside any request"
    assert {shape.collection for shape in finds} == {"clinics"}
