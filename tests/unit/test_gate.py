from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId
from pymongo import IndexModel

from enterprise.cursor import keyset_filter
from indexes import DECLARED, KEY_FILTERS, SHAPES
from indexes.capture import SentShape, Tally, shapes_of
from indexes.gate import Declarations, check, predicates, problems, table, verdict
from indexes.shapes import QueryShape

pytestmark = pytest.mark.unit

ORG, CLINIC, AFTER = ObjectId(), ObjectId(), ObjectId()
NOW = datetime(2026, 12, 1, tzinfo=UTC)
BY_NAME = (("nameKey", 1), ("_id", 1))
NEWEST = (("createdAt", -1), ("_id", -1))
ASSIGNED = (("assignedAt", -1), ("_id", -1))


def _find(collection: str, query: dict[str, Any], sort: Any = (), **rest: Any) -> dict[str, Any]:
    return {"find": collection, "filter": query, "sort": dict(sort), "limit": 21, **rest}


# What the app sends (as recorded by the integration suite), values filled in.
APP_COMMANDS: list[tuple[str, dict[str, Any]]] = [
    ("find", _find("organizations", {}, BY_NAME)),
    ("find", _find("organizations", keyset_filter(NEWEST, (NOW, AFTER)), NEWEST)),
    ("find", _find("organizations", {"$and": [{"_id": ORG}, {"_id": ORG}]})),
    (
        "find",
        _find(
            "clinics",
            {"$and": [{"organizationId": ORG}, keyset_filter(BY_NAME, ("a", AFTER))]},
            BY_NAME,
        ),
    ),  # fmt: skip
    ("find", _find("clinics", {"organizationId": ORG, "nameKey": {"$regex": "^ac"}}, BY_NAME)),
    ("find", _find("clinics", {"address.city": "Springfield"}, BY_NAME)),
    ("find", _find("clinics", {"_id": {"$in": [CLINIC]}, "organizationId": ORG})),
    ("find", _find("clinics", {"_id": {"$ne": CLINIC}, "organizationId": ORG, "code": "C1"})),
    ("find", _find("assignments", {"isActive": {"$in": [False, True]}}, ASSIGNED)),
    (
        "find",
        _find(
            "assignments", {"providerId": "p", "isActive": True, "organizationId": ORG}, ASSIGNED
        ),
    ),  # fmt: skip
    (
        "find",
        _find(
            "assignments",
            {"clinicId": CLINIC, "isActive": True, "organizationId": ORG},
            (("providerId", 1), ("_id", 1)),
            projection={"_id": 1, "providerId": 1, "isPrimaryClinic": 1},
        ),
    ),
    (
        "aggregate",
        {
            "aggregate": "assignments",
            "pipeline": [
                {"$match": {"organizationId": ORG, "isActive": True}},
                {"$group": {"_id": "$providerId"}},
            ],
        },
    ),  # fmt: skip
    ("findAndModify", {"findAndModify": "clinics", "query": {"_id": CLINIC, "version": 2}}),
    ("find", {"find": "api_keys", "filter": {"keyHash": "0" * 64, "revokedAt": None}, "limit": 1}),
    ("count", {"count": "clinics"}),
]


def _shapes(commands: list[tuple[str, dict[str, Any]]]) -> dict[SentShape, Tally]:
    return {shape: Tally(1) for name, cmd in commands for shape in shapes_of(name, cmd)}


def _declared(**changes: Any) -> Declarations:
    return Declarations(changes.get("indexes", DECLARED), SHAPES, KEY_FILTERS)


def _without(collection: str, index: str) -> Declarations:
    kept = {c: [m for m in ms if m.document["name"] != index] for c, ms in DECLARED.items()}
    assert len(kept[collection]) == len(DECLARED[collection]) - 1
    return _declared(indexes=kept)


def test_every_query_the_app_sends_has_a_serving_index() -> None:
    rows = check(_shapes(APP_COMMANDS), _declared())
    assert problems(rows) == []
    assert table(rows)[-1].endswith("0 without a serving index")


@pytest.mark.parametrize(
    ("collection", "index", "shape_text"),
    [
        ("organizations", "organizations_created", "organizations find {$or: "),
        ("clinics", "clinics_city_name", "clinics find {address.city: $eq} sort nameKey 1"),
        ("assignments", "assignments_active_assigned", "assignments find {isActive: $in}"),
        ("assignments", "assignments_clinic_providers_covering", "sort providerId 1, _id 1"),
    ],
)
def test_removing_an_index_fails_the_gate_naming_the_shape(
    collection: str, index: str, shape_text: str
) -> None:
    found = problems(check(_shapes(APP_COMMANDS), _without(collection, index)))
    assert len(found) == 1, found
    assert found[0].startswith(collection)
    assert shape_text in found[0]
    assert "no declared index serves it" in found[0]


def test_a_new_query_without_an_index_fails_the_gate() -> None:
    new = ("find", _find("organizations", {"subscriptionEndDate": {"$lt": NOW}}, NEWEST))
    found = problems(check(_shapes([*APP_COMMANDS, new]), _declared()))
    assert len(found) == 1
    assert found[0].startswith("organizations find {subscriptionEndDate: $lt} sort createdAt -1")


def test_a_filter_outside_the_index_is_not_served() -> None:
    # subscriptionEndDate would be filtered on documents after the index walk: not ESR.
    query = {"status": "ACTIVE", "subscriptionEndDate": {"$lt": NOW}}
    shape = _one(_find("organizations", query, BY_NAME))
    assert not verdict(shape, _declared()).ok


def test_an_in_memory_sort_is_not_served() -> None:
    shape = _one(_find("clinics", {"organizationId": ORG}, (("name", 1),)))
    result = verdict(shape, _declared())
    assert not result.ok
    assert "sort keys [('name', 1)]" in result.problems[0]


def test_an_unbounded_filter_is_not_served() -> None:
    shape = _one(_find("clinics", {"name": {"$regex": "dental"}}))
    assert "nothing in it lets index" in verdict(shape, _declared()).problems[0]


def test_a_unique_key_bound_by_equality_serves_without_sort_or_other_fields() -> None:
    shape = _one(_find("api_keys", {"keyHash": "h", "revokedAt": None}, (("createdAt", 1),)))
    result = verdict(shape, _declared())
    assert (result.index, result.ok) == ("api_keys_hash_unique", True)


def test_key_filters_must_be_declared() -> None:
    query = {"clinicId": CLINIC, "isActive": True, "organizationId": ORG}
    shape = _one(_find("assignments", query, ASSIGNED))
    assert verdict(shape, _declared()).how == "ok: ESR, key filter organizationId"
    undeclared = Declarations(DECLARED, SHAPES, {})
    assert not verdict(shape, undeclared).ok


def test_a_declared_covered_shape_must_stay_covered() -> None:
    covering = IndexModel([("a", 1), ("b", 1), ("_id", 1), ("c", 1)], name="a_b_covering")
    declared = QueryShape(
        "c.covered", "c", "a_b_covering", ("a",), (("b", 1), ("_id", 1)), (), ("_id", "c"), True
    )
    decl = Declarations({"c": [covering]}, [declared])
    sort = (("b", 1), ("_id", 1))
    inside = _one(_find("c", {"a": 1}, sort, projection={"_id": 1, "c": 1}))
    assert verdict(inside, decl).how == "ok: ESR, covered"
    # A field outside the declared projection: same query, no longer a covered read.
    outside = _one(_find("c", {"a": 1}, sort, projection={"_id": 1, "d": 1}))
    assert verdict(outside, decl).how == "ok: ESR"
    # Covered projection but a filter field the index lacks: documents must be read.
    filtered = _one(_find("c", {"a": 1, "e": {"$ne": 1}}, sort, projection={"c": 1}))
    assert "e is not in index a_b_covering" in verdict(filtered, decl).problems[0]


def test_keyset_or_is_a_range_on_the_sort_keys_and_other_ors_need_every_arm() -> None:
    keyset = keyset_filter(BY_NAME, ("a", AFTER))
    assert predicates(_one(_find("c", keyset, BY_NAME)).filter_doc(), ["nameKey", "_id"]).ranges
    either = {"$or": [{"nameKey": "a"}, {"address.city": "x"}]}
    shape = _one(_find("clinics", either))
    assert verdict(shape, _declared()).ok
    shape = _one(_find("clinics", {"$or": [{"nameKey": "a"}, {"managerUserId": "x"}]}))
    assert not verdict(shape, _declared()).ok


def _one(command: dict[str, Any]) -> SentShape:
    (shape,) = shapes_of("find", command)
    return shape


def test_a_strict_esr_index_is_preferred_over_a_key_filter() -> None:
    shape = _one(_find("clinics", {"organizationId": ORG, "status": "ACTIVE"}, BY_NAME))
    result = verdict(shape, _declared())
    assert (result.index, result.how) == ("clinics_org_status_name", "ok: ESR")
    assert result.declared == "clinics.org_list.by_status_name"
