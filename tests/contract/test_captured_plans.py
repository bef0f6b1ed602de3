"""Every query shape the app sent during the integration suite, explained on seeded MongoDB
with no hint: the planner itself must pick an index (IXSCAN, never COLLSCAN), never sort in
memory (no SORT stage), and walk keyset pages without re-reading earlier ones.

The shapes come from the integration suite's capture (`tests/conftest.py` writes
`.stack/query-shapes.json`), so this runs after it: the `query-plans` job of
`.github/workflows/ci.yml` runs the integration tier, then this file. Values are not captured,
so each shape is filled with values that exist in the seed: one large organization, clinic
and provider (`BIG` documents each), plus smaller ones so the planner has choices to make.

Keyset pages are explained twice, on page 1 and page 1,000 (`PAGE_LIMIT` 20, so the boundary
is document 19,999 in sort order). For both, keys examined must be at most the query's limit
+ 1: the app asks for `PAGE_LIMIT + 1` documents (the extra one says "there is more"), and
one more key per index range is its boundary (the key it starts from, or the first one out of
bounds; a `$in` on an index prefix merges one range per value). Without index bounds on the
cursor's `$or`, page 1,000 would examine about 20,000 keys.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from enterprise.capabilities import ServerCapabilities
from indexes import DECLARED, KEY_FILTERS, SHAPES
from indexes.capture import SentShape, load
from indexes.gate import Declarations, predicates, verdict
from indexes.planner import postgres_plan
from indexes.sync import sync as sync_indexes
from tests.conftest import QUERY_SHAPES_FILE
from tests.contract.conftest import require_index_plans
from tests.integration.factories import (
    assignment_document,
    clinic_document,
    organization_document,
    stored_now,
)

pytestmark = pytest.mark.contract

PAGE_LIMIT = 20
DEEP_PAGE = 1_000
BIG = PAGE_LIMIT * DEEP_PAGE + PAGE_LIMIT + 1  # page 1,000 is full and has a next page
SMALL = 200  # documents of other organizations, clinics and providers
INDEXED_STAGES = ("IXSCAN", "IDHACK", "EXPRESS", "COUNT_SCAN", "DISTINCT_SCAN")

ORG, CLINIC, PROVIDER, KEY_HASH = ObjectId(), ObjectId(), "prov-big", "0" * 64
# Equality values found in the large groups; `_id` gets a seeded id per collection.
PROFILE: dict[str, Any] = {
    "organizationId": ORG,
    "clinicId": CLINIC,
    "providerId": PROVIDER,
    "primaryProviderId": PROVIDER,
    "isActive": True,
    "isPrimaryClinic": False,
    "status": "ACTIVE",
    "subscriptionTier": "FREE",
    "address.city": "Springfield",
    "address.state": "IL",
    "keyHash": KEY_HASH,
    "revokedAt": None,
    "version": 1,
}
DECLARATIONS = Declarations(DECLARED, SHAPES, KEY_FILTERS)
PREFIXES = {"nameKey": "^" + "clinic", "name": "^" + "Clinic"}


def _captured() -> list[SentShape]:
    if not QUERY_SHAPES_FILE.is_file():
        return []
    return [shape for shape in load(QUERY_SHAPES_FILE) if shape.operation != "count (metadata)"]


CAPTURED = _captured()
# Shapes are written when a run of the integration suite ends, so a first run has none to
# check: say so, rather than pytest's bare "got empty parameter set".
NOTHING_CAPTURED = pytest.param(
    None,
    marks=pytest.mark.skip(
        reason=f"no captured query shapes in {QUERY_SHAPES_FILE} yet: a run of the integration "
        "suite writes them when it ends; check them in a later run (the CI query-plans job runs "
        "the suite first)"
    ),
    id="no-captured-shapes",
)


@pytest.fixture(scope="module")
async def mongodb_plans(capabilities: ServerCapabilities, mongo: AsyncMongoClient[Any]) -> None:
    require_index_plans(capabilities)
    probe = await mongo["plans_format_probe"].command(
        "explain", {"find": "none", "filter": {"n": 1}}, verbosity="executionStats"
    )
    if postgres_plan(probe) is not None:
        pytest.skip(
            "the server explains with a PostgreSQL plan (FerretDB v2 / DocumentDB), which has "
            "no MongoDB stages and no totalKeysExamined to bound a keyset page by; its index "
            "plans are checked on the declared shapes by test_query_plans.py"
        )
    if not CAPTURED:
        pytest.skip(
            f"no captured query shapes at {QUERY_SHAPES_FILE}: run the integration tier first "
            "(the query-plans job of .github/workflows/ci.yml does)"
        )


@pytest.fixture(scope="module")
async def seeded(
    mongodb_plans: None, mongo: AsyncMongoClient[Any]
) -> AsyncIterator[tuple[Any, dict[str, ObjectId]]]:
    """A database with the declared indexes and large groups to page through."""
    name = f"plans_{uuid.uuid4().hex[:12]}"
    db = mongo[name]
    await sync_indexes(db, prune=False, echo=lambda line: None)
    base = stored_now(-(BIG + SMALL) * 10)

    def at(i: int) -> Any:
        return base + timedelta(milliseconds=i)

    organizations = [organization_document(f"Org {i:06d}", at=at(i)) for i in range(BIG)]
    organizations[0]["_id"] = ORG
    clinics = [clinic_document(ORG, f"Clinic {i:06d}", f"B{i:06d}", at=at(i)) for i in range(BIG)]
    clinics[0]["_id"] = CLINIC
    clinics += [
        clinic_document(
            organizations[1 + i % 10]["_id"],
            f"Clinic other {i:05d}",
            f"O{i:06d}",
            at=at(i),
            address={"city": f"Town {i % 7}", "state": "WI"},
        )
        for i in range(SMALL)
    ]
    # One provider in many clinics, and one clinic with many providers.
    assignments = [
        assignment_document(PROVIDER, clinics[i]["_id"], ORG, at=at(i)) for i in range(BIG)
    ]
    assignments += [
        assignment_document(f"prov-{i:06d}", CLINIC, ORG, at=at(i)) for i in range(1, BIG)
    ]
    assignments += [
        assignment_document(
            f"prov-{i:06d}",
            clinics[BIG + i]["_id"],
            clinics[BIG + i]["organizationId"],
            at=at(i),
            is_active=i % 2 == 0,
        )  # fmt: skip
        for i in range(SMALL)
    ]
    keys = [{"_id": ObjectId(), "keyHash": KEY_HASH, "name": "k", "role": "sre", "revokedAt": None}]
    for collection, documents in (
        ("organizations", organizations),
        ("clinics", clinics),
        ("assignments", assignments),
        ("api_keys", keys),
    ):
        await db[collection].insert_many(documents, ordered=False)
    ids = {
        "organizations": ORG,
        "clinics": CLINIC,
        "assignments": assignments[0]["_id"],
        "api_keys": keys[0]["_id"],
    }
    yield db, ids
    await mongo.drop_database(name)


def _value(field: str, source: Mapping[str, Any]) -> Any:
    value: Any = source
    for part in field.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _fill(node: Mapping[str, Any], source: Mapping[str, Any]) -> dict[str, Any]:
    """A filter shape with values from `source` (a document, or the profile)."""
    query: dict[str, Any] = {}
    for field, token in node.items():
        if field in ("$and", "$or", "$nor"):
            query[field] = [_fill(branch, source) for branch in token]
            continue
        value = source[field] if field in source else _value(field, source)
        operators = str(token).split()
        if operators == ["$eq"]:
            query[field] = value
        elif operators == ["$in"]:
            query[field] = {"$in": [False, True] if isinstance(value, bool) else [value]}
        elif operators == ["$regex^"]:
            query[field] = {"$regex": PREFIXES.get(field, "^a")}
        elif operators == ["$regex"]:
            query[field] = {"$regex": "a"}
        else:
            query[field] = {op: value for op in operators}
    return query


def _keyset_free(node: Mapping[str, Any], sort_fields: frozenset[str]) -> dict[str, Any]:
    """The filter without its keyset `$or`: what page 1 sends."""
    kept: dict[str, Any] = {}
    for field, token in node.items():
        if field == "$or" and predicates({"$or": token}, sort_fields).ranges:
            continue
        if field == "$and":
            branches = [_keyset_free(b, sort_fields) for b in token]
            branches = [b for b in branches if b]
            if len(branches) == 1:
                kept.update(branches[0])
            elif branches:
                kept["$and"] = branches
            continue
        kept[field] = token
    return kept


def _stages(node: Any) -> Iterator[str]:
    """Stage names of the winning plan (rejected plans left out), any engine or wrapper."""
    if isinstance(node, Mapping):
        if "stage" in node:
            yield str(node["stage"])
        for key, child in node.items():
            if key not in ("rejectedPlans", "allPlansExecution"):
                yield from _stages(child)
    elif isinstance(node, list):
        for child in node:
            yield from _stages(child)


def _plan_problems(explain: Mapping[str, Any], point_lookup: bool) -> list[str]:
    """IXSCAN, no COLLSCAN, no SORT; a point lookup on a unique key may sort what it found
    (at most one document per value)."""
    planner = explain.get("queryPlanner", {})
    stages = list(_stages(planner.get("winningPlan", planner)))
    problems = []
    if "COLLSCAN" in stages:
        problems.append(f"the planner scans the collection: {stages}")
    if not any(stage.startswith(INDEXED_STAGES) for stage in stages):
        problems.append(f"the planner uses no index: {stages}")
    if "SORT" in stages and not point_lookup:
        problems.append(f"the planner sorts in memory: {stages}")
    return problems


def _find(shape: SentShape, query: dict[str, Any], limit: int | None) -> dict[str, Any]:
    command: dict[str, Any] = {"find": shape.collection, "filter": query}
    if shape.sort:
        command["sort"] = dict(shape.sort)
    if shape.projection:
        command["projection"] = dict(shape.projection)
    if limit:
        command["limit"] = limit
    return command


def _command(shape: SentShape, query: dict[str, Any]) -> dict[str, Any]:
    """The command to explain, as the app sends it (an aggregate's $match+$sort prefix is
    planned exactly like a find with that filter and sort)."""
    if shape.operation == "findAndModify":
        return {"findAndModify": shape.collection, "query": query, "update": {"$inc": {"n": 1}}}
    if shape.operation in ("update", "delete"):
        statement = {"q": query, "u": {"$inc": {"n": 1}}} if shape.operation == "update" else {}
        statement = statement or {"q": query, "limit": 1}
        return {shape.operation: shape.collection, f"{shape.operation}s": [statement]}
    if shape.operation == "count":
        return {"count": shape.collection, "query": query}
    return _find(shape, query, PAGE_LIMIT + 1 if shape.sort else None)


async def _explain(db: Any, command: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = await db.command("explain", command, verbosity="executionStats")
    return result


@pytest.mark.parametrize(
    "shape", CAPTURED or [NOTHING_CAPTURED], ids=lambda s: s.text()[:120] if s else None
)
async def test_captured_shape_is_index_backed_without_hint(
    seeded: tuple[Any, dict[str, ObjectId]], shape: SentShape
) -> None:
    db, ids = seeded
    sort_fields = frozenset(name for name, _ in shape.sort)
    profile = {**PROFILE, "_id": ids[shape.collection]}
    page_one = _fill(_keyset_free(shape.filter_doc(), sort_fields), profile)
    point_lookup = verdict(shape, DECLARATIONS).how.startswith("ok: unique")
    explain = await _explain(db, _command(shape, page_one))
    assert _plan_problems(explain, point_lookup) == [], explain.get("queryPlanner")
    keyset = page_one != _fill(shape.filter_doc(), profile) and shape.operation == "find"
    if not keyset:
        return
    _assert_page_keys(explain, "page 1")

    # Page 1,000: the cursor's boundary is the last document of page 999.
    boundary = (
        await db[shape.collection]
        .find(page_one, sort=list(shape.sort), skip=DEEP_PAGE * PAGE_LIMIT - 1, limit=1)
        .to_list(1)
    )
    assert boundary, "the seed must reach page 1,000"
    deep = _fill(shape.filter_doc(), {**boundary[0], **profile, **_sort_values(shape, boundary[0])})
    explain = await _explain(db, _command(shape, deep))
    assert _plan_problems(explain, point_lookup) == [], explain.get("queryPlanner")
    _assert_page_keys(explain, "page 1,000")


def _assert_page_keys(explain: Mapping[str, Any], page: str) -> None:
    """At most limit + 1 keys per index range: the page's PAGE_LIMIT + 1 documents, plus the
    one boundary key of each range scanned (a $in on a prefix merges one range per value)."""
    stats = explain["executionStats"]
    assert stats["nReturned"] == PAGE_LIMIT + 1, f"the seed must fill {page}"
    planner = explain["queryPlanner"]
    scans = sum(1 for stage in _stages(planner["winningPlan"]) if stage.endswith("IXSCAN"))
    assert stats["totalKeysExamined"] <= PAGE_LIMIT + 1 + max(scans, 1), (page, stats, planner)


def _sort_values(shape: SentShape, document: Mapping[str, Any]) -> dict[str, Any]:
    """The boundary's own sort-key values win over the profile inside the keyset."""
    return {name: _value(name, document) for name, _ in shape.sort}
