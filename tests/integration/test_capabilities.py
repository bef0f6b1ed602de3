"""The capability record says what the server does: each claim checked by doing it."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from enterprise.capabilities import ServerCapabilities
from enterprise.repositories.client import read_capabilities
from tests.conftest import make_client

pytestmark = pytest.mark.integration

OPTIONS = {
    "partial_indexes": {"partialFilterExpression": {"n": {"$gt": 1}}},
    "ttl_indexes": {"expireAfterSeconds": 60},
    "collation_indexes": {"collation": {"locale": "en", "strength": 2}},
}


async def _accepts(db: AsyncDatabase[Any], option: dict[str, Any]) -> bool:
    try:
        await db["plain"].create_indexes([IndexModel([("n", 1)], name="claimed", **option)])
    except OperationFailure:
        return False
    finally:
        await db["plain"].drop()
    return True


@pytest.mark.parametrize("claim", sorted(OPTIONS))
async def test_index_option_claims_match_the_server(
    capabilities: ServerCapabilities, db: AsyncDatabase[Any], claim: str
) -> None:
    assert await _accepts(db, OPTIONS[claim]) is getattr(capabilities, claim)


async def test_recorded_stages_run_and_unrecorded_ones_are_refused(
    capabilities: ServerCapabilities, db: AsyncDatabase[Any]
) -> None:
    await db["plain"].insert_many([{"n": n} for n in range(3)])
    cursor = await db["plain"].aggregate([{"$match": {}}, {"$group": {"_id": None}}])
    assert len(await cursor.to_list()) == 1
    assert {"$match", "$group"} <= capabilities.aggregation_stages
    if "$out" not in capabilities.aggregation_stages:
        with pytest.raises(OperationFailure):
            await (await db["plain"].aggregate([{"$out": "copy"}])).to_list()


async def test_probes_leave_nothing_behind(
    mongo: AsyncMongoClient[Any], db: AsyncDatabase[Any]
) -> None:
    await db["kept"].insert_one({"n": 1})
    await read_capabilities(mongo, db.name)
    assert await db.list_collection_names() == ["kept"]


async def test_startup_arms_the_guard_exactly_where_updates_are_not_atomic(
    capabilities: ServerCapabilities, app: Any
) -> None:
    async with await make_client(app):
        assert app.state.guard.enabled is not capabilities.atomic_updates
