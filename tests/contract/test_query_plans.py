"""Every declared query shape is served by its index on real MongoDB: IXSCAN on the named
index, no in-memory SORT, and no FETCH for covered shapes (explain-based)."""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId

from enterprise.capabilities import ServerCapabilities
from indexes import SHAPES, QueryShape
from indexes.planner import explain_problems

pytestmark = pytest.mark.contract

SAMPLE: dict[str, Any] = {
    "organizationId": ObjectId(),
    "clinicId": ObjectId(),
    "status": "ACTIVE",
    "isActive": True,
    "providerId": "prov-1",
    "keyHash": "0" * 64,
    "collection": "clinics",
    "documentId": ObjectId(),
}


def _query(shape: QueryShape) -> dict[str, Any]:
    query = {field: SAMPLE[field] for field in shape.equality}
    for field in shape.range:
        query[field] = {"$regex": "^acme"}
    return query


@pytest.fixture
def mongodb_plans(capabilities: ServerCapabilities) -> None:
    if not capabilities.index_backed_reads:
        pytest.skip(
            f"{capabilities.server} {capabilities.version} answers every filter but _id with a "
            "full scan (explain: SCAN, filterPushdown=false), so index plans can only be "
            "checked on MongoDB"
        )


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.name)
async def test_shape_is_served_by_its_index(
    mongodb_plans: None, mongo: Any, database: str, shape: QueryShape
) -> None:
    command: dict[str, Any] = {
        "find": shape.collection,
        "filter": _query(shape),
        "hint": shape.index,
        "limit": 21,
    }
    if shape.sort:
        command["sort"] = dict(shape.sort)
    if shape.projection:
        command["projection"] = {field: 1 for field in shape.projection} | (
            {} if "_id" in shape.projection else {"_id": 0}
        )
    explain = await mongo[database].command("explain", command, verbosity="queryPlanner")
    assert explain_problems(explain, shape) == []
