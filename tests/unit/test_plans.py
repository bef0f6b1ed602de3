"""Query shapes (values redacted), query classes and plan summaries."""

from __future__ import annotations

import orjson
import pytest
from bson import ObjectId

from enterprise.plans import command_shape, query_class, shape_key, summarize_plan

pytestmark = pytest.mark.unit


def test_a_find_shape_keeps_fields_and_operators_and_drops_every_value() -> None:
    secret = "Smile Dental of Jane Doe"
    command = {
        "find": "clinics",
        "filter": {
            "organizationId": ObjectId(),
            "name": {"$regex": secret, "$options": "i"},
            "_id": {"$in": [ObjectId(), ObjectId(), ObjectId()]},
        },
        "sort": {"name": 1, "_id": 1},
        "projection": {"name": 1},
        "limit": 21,
    }
    shape = command_shape("find", command)
    assert shape == {
        "filter": {
            "organizationId": "?",
            "name": {"$regex": "?", "$options": "?"},
            "_id": {"$in": ["?"]},
        },
        "sort": {"name": 1, "_id": 1},
        "projection": {"name": 1},
        "limit": "?",
    }
    assert secret not in orjson.dumps(shape).decode()


def test_one_shape_whatever_the_values() -> None:
    one = command_shape("find", {"find": "c", "filter": {"code": "A", "_id": {"$in": [1, 2]}}})
    two = command_shape("find", {"find": "c", "filter": {"code": "B", "_id": {"$in": [3]}}})
    assert shape_key("find", "c", one) == shape_key("find", "c", two)
    other = command_shape("find", {"find": "c", "filter": {"name": "B"}})
    assert shape_key("find", "c", one) != shape_key("find", "c", other)


def test_an_aggregation_keeps_its_structure_but_not_its_match_values() -> None:
    pipeline = [
        {"$match": {"organizationId": ObjectId(), "status": "ACTIVE"}},
        {"$group": {"_id": "$status", "n": {"$sum": 1}, "label": {"$first": "Jane"}}},
        {"$sort": {"n": -1}},
    ]
    shape = command_shape("aggregate", {"aggregate": "clinics", "pipeline": pipeline})
    assert shape == {
        "pipeline": [
            {"$match": {"organizationId": "?", "status": "?"}},
            {"$group": {"_id": "$status", "n": {"$sum": 1}, "label": {"$first": "?"}}},
            {"$sort": {"n": -1}},
        ]
    }


@pytest.mark.parametrize(
    ("name", "command", "expected"),
    [
        ("find", {"filter": {"_id": ObjectId()}}, "single"),
        ("find", {"filter": {"code": "x"}, "limit": 1}, "single"),
        ("find", {"filter": {"_id": {"$in": [1, 2]}}}, "list"),
        ("count", {"query": {}}, "list"),
        ("aggregate", {"pipeline": []}, "aggregation"),
        ("findAndModify", {"query": {"_id": 1}}, "single"),
        ("hello", {}, None),
    ],
)
def test_query_classes(name: str, command: dict[str, object], expected: str | None) -> None:
    assert query_class(name, command) == expected


def test_a_mongodb_plan_is_summarised() -> None:
    explained = {
        "queryPlanner": {
            "winningPlan": {
                "stage": "LIMIT",
                "inputStage": {
                    "stage": "FETCH",
                    "inputStage": {"stage": "IXSCAN", "indexName": "organizationId_1_name_1"},
                },
            }
        },
        "executionStats": {"totalKeysExamined": 21, "totalDocsExamined": 21, "nReturned": 20},
    }
    assert summarize_plan(explained) == {
        "available": True,
        "winningStage": "LIMIT",
        "stages": ["LIMIT", "FETCH", "IXSCAN"],
        "index": "organizationId_1_name_1",
        "keysExamined": 21,
        "docsExamined": 21,
        "returned": 20,
    }


def test_an_aggregation_plan_is_read_from_its_cursor_stage() -> None:
    explained = {
        "stages": [
            {
                "$cursor": {
                    "queryPlanner": {"winningPlan": {"stage": "COLLSCAN"}},
                    "executionStats": {
                        "totalKeysExamined": 0,
                        "totalDocsExamined": 9,
                        "nReturned": 3,
                    },
                }
            },
            {"$group": {}},
        ]
    }
    summary = summarize_plan(explained)
    assert (summary["winningStage"], summary["index"], summary["docsExamined"]) == (
        "COLLSCAN",
        None,
        9,
    )


def test_ferretdb_explain_says_why_there_is_no_plan() -> None:
    # What FerretDB v1.24 (SQLite) answered here to an explain of a find.
    explained = {
        "queryPlanner": {"Plan": ["id=2 parent=0 notused=0 detail=SCAN x_fd0c5087"]},
        "filterPushdown": False,
        "sortPushdown": False,
        "limitPushdown": False,
        "ok": 1.0,
    }
    summary = summarize_plan(explained)
    assert summary["available"] is False
    assert "no winningPlan" in summary["reason"]
    assert summary["serverPlan"] == ["id=2 parent=0 notused=0 detail=SCAN x_fd0c5087"]
    assert summary["pushdown"] == {"filter": False, "sort": False, "limit": False}
