"""Ask the server what it can do, on a scratch collection: the I/O half of the capability record.

Each question is the real operation: create a partial, a TTL and a collation index; run each
aggregation stage once; explain an indexed find (with a hint, so the answer is "can this
server read through an index", not "does its planner prefer one on ten documents"). A refusal
means "not supported"; the scratch collections are dropped afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from pymongo import IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure, PyMongoError

from enterprise.capabilities import MONGODB_STAGES, ProbedFeatures

logger = logging.getLogger(__name__)
Document = dict[str, Any]

_SCRATCH_DOCUMENTS = [{"k": n, "at": None, "tags": ["a", "b"]} for n in range(10)]


def _stage_specs(scratch: str) -> dict[str, Any]:
    """A minimal valid argument for each stage MongoDB implements, on the scratch collection."""
    # Each writing stage has a target of its own: run side by side on one target, one of them
    # can fail for the other's sake, not for want of the stage.
    return {
        "$addFields": {"x": 1},
        "$bucket": {"groupBy": "$k", "boundaries": [0, 5, 10], "default": "other"},
        "$collStats": {"count": {}},
        "$count": "n",
        "$facet": {"first": [{"$limit": 1}]},
        "$group": {"_id": None, "n": {"$sum": 1}},
        "$limit": 1,
        "$lookup": {"from": scratch, "localField": "k", "foreignField": "k", "as": "same"},
        "$match": {"k": {"$gte": 0}},
        "$merge": {"into": f"{scratch}_merge"},
        "$out": f"{scratch}_out",
        "$project": {"k": 1},
        "$replaceRoot": {"newRoot": {"k": "$k"}},
        "$sample": {"size": 1},
        "$set": {"x": 1},
        "$skip": 1,
        "$sort": {"k": 1},
        "$sortByCount": "$k",
        "$unionWith": scratch,
        "$unset": "at",
        "$unwind": "$tags",
    }


async def _refused(collection: AsyncCollection[Document], model: IndexModel) -> bool:
    try:
        await collection.create_indexes([model])
    except OperationFailure as ex:
        logger.info("server refuses index %s: %s", model.document["name"], ex)
        return True
    return False


async def _stage_runs(collection: AsyncCollection[Document], stage: str, spec: Any) -> bool:
    try:
        cursor = await collection.aggregate([{stage: spec}])
        await cursor.to_list()
    except OperationFailure as ex:
        logger.info("server refuses aggregation stage %s: %s", stage, ex)
        return False
    return True


def _plan_nodes(node: Any) -> Iterator[Mapping[str, Any]]:
    """Every mapping in an explain document, depth first (both MongoDB and PostgreSQL plans)."""
    if isinstance(node, Mapping):
        yield node
        for value in node.values():
            yield from _plan_nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _plan_nodes(value)


async def _reads_through_index(db: AsyncDatabase[Document], scratch: str) -> bool:
    explain = await db.command(
        "explain",
        {"find": scratch, "filter": {"k": 3}, "hint": "probe_k"},
        verbosity="queryPlanner",
    )
    return any(
        node.get("indexName") == "probe_k" or node.get("Index Name") == "probe_k"
        for node in _plan_nodes(explain)
    )


async def probe_features(db: AsyncDatabase[Document]) -> ProbedFeatures | None:
    """The server's answers, or None when it would not let us ask (e.g. no privilege)."""
    scratch = f"__capabilities_probe_{uuid.uuid4().hex[:12]}"
    collection = db[scratch]
    try:
        await collection.insert_many([dict(doc) for doc in _SCRATCH_DOCUMENTS])
        await collection.create_indexes([IndexModel([("k", 1)], name="probe_k")])
        partial, ttl, collation = [
            not await _refused(collection, model)
            for model in (
                IndexModel(
                    [("k", -1)], name="probe_partial", partialFilterExpression={"k": {"$gt": 5}}
                ),
                IndexModel([("at", 1)], name="probe_ttl", expireAfterSeconds=60),
                IndexModel(
                    [("k", 1), ("at", 1)],
                    name="probe_collation",
                    collation={"locale": "en", "strength": 2},
                ),
            )
        ]
        indexed = await _reads_through_index(db, scratch)
        specs = _stage_specs(scratch)
        runs = await asyncio.gather(
            *(_stage_runs(collection, stage, spec) for stage, spec in specs.items())
        )
        stages = frozenset(stage for stage, ran in zip(specs, runs, strict=True) if ran)
    except PyMongoError as ex:
        logger.warning("could not probe the server's capabilities (%s); using its claims", ex)
        return None
    finally:
        for name in (scratch, f"{scratch}_out", f"{scratch}_merge"):
            try:
                await db.drop_collection(name)
            except PyMongoError as ex:
                logger.warning("could not drop probe collection %s: %s", name, ex)
    unknown = MONGODB_STAGES - frozenset(specs)
    return ProbedFeatures(
        partial_indexes=partial,
        ttl_indexes=ttl,
        collation_indexes=collation,
        index_backed_reads=indexed,
        aggregation_stages=stages | unknown,
    )
