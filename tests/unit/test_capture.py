from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from pymongo import monitoring

from indexes.capture import SentShape, ShapeRecorder, dump, load, shapes_of

pytestmark = pytest.mark.unit

ORG = ObjectId()


def _one(name: str, command: dict[str, Any]) -> SentShape:
    (shape,) = shapes_of(name, command)
    return shape


def test_find_keeps_structure_and_drops_values() -> None:
    keyset = {"$or": [{"nameKey": {"$gt": "acme"}}, {"nameKey": "acme", "_id": {"$gt": ORG}}]}
    shape = _one(
        "find",
        {
            "find": "clinics",
            "filter": {"$and": [{"organizationId": ORG}, keyset]},
            "sort": {"nameKey": 1, "_id": 1},
            "projection": {"_id": 1, "name": 1},
            "limit": 21,
        },
    )
    assert shape.collection == "clinics"
    assert shape.sort == (("nameKey", 1), ("_id", 1))
    assert shape.projection == (("_id", 1), ("name", 1))
    assert shape.filter_doc() == {
        "$and": [
            {"$or": [{"_id": "$gt", "nameKey": "$eq"}, {"nameKey": "$gt"}]},
            {"organizationId": "$eq"},
        ]
    }
    assert "acme" not in shape.filter
    assert str(ORG) not in shape.filter


def test_same_query_with_other_values_is_the_same_shape() -> None:
    first = _one("find", {"find": "organizations", "filter": {"status": "ACTIVE"}})
    second = _one("find", {"find": "organizations", "filter": {"status": "ARCHIVED"}})
    assert first == second


def test_anchored_regex_is_a_prefix_and_others_are_not() -> None:
    def regex(value: Any) -> str:
        shape = _one("find", {"find": "clinics", "filter": {"nameKey": value}})
        return str(shape.filter_doc()["nameKey"])

    assert regex({"$regex": "^acme"}) == "$regex^"
    assert regex(re.compile("^acme")) == "$regex^"
    assert regex({"$regex": "acme", "$options": "i"}) == "$regex"
    assert regex({"$regex": "^.*acme"}) == "$regex"


def test_operators_are_sorted_and_in_is_kept() -> None:
    shape = _one("find", {"find": "a", "filter": {"at": {"$lt": 2, "$gte": 1}, "x": {"$in": []}}})
    assert shape.filter_doc() == {"at": "$gte $lt", "x": "$in"}


def test_count_documents_pipeline_is_match_then_stages() -> None:
    pipeline = [{"$match": {"organizationId": ORG}}, {"$limit": 10_000}, {"$group": {"_id": 1}}]
    shape = _one("aggregate", {"aggregate": "clinics", "pipeline": pipeline, "cursor": {}})
    assert shape.operation == "aggregate"
    assert shape.filter_doc() == {"organizationId": "$eq"}
    assert shape.stages == ("$limit", "$group")


def test_aggregate_sort_right_after_match_is_the_sort() -> None:
    pipeline = [{"$match": {"a": 1}}, {"$sort": {"b": -1}}, {"$group": {"_id": "$c"}}]
    shape = _one("aggregate", {"aggregate": "c", "pipeline": pipeline})
    assert shape.sort == (("b", -1),)
    assert shape.stages == ("$group",)


def test_estimated_count_reads_metadata() -> None:
    assert _one("count", {"count": "clinics"}).operation == "count (metadata)"
    assert _one("count", {"count": "clinics", "query": {"a": 1}}).operation == "count"


def test_writes_with_filters_are_shapes_and_inserts_are_not() -> None:
    statements = [{"q": {"_id": ORG, "version": 3}, "u": {}}, {"q": {"_id": ORG}, "u": {}}]
    shapes = shapes_of("update", {"update": "clinics", "updates": statements})
    assert [s.filter_doc() for s in shapes] == [{"_id": "$eq", "version": "$eq"}, {"_id": "$eq"}]
    modify = _one("findAndModify", {"findAndModify": "c", "query": {"_id": 1}, "fields": {"a": 1}})
    assert modify.projection == (("a", 1),)
    assert shapes_of("insert", {"insert": "clinics", "documents": [{}]}) == []
    assert shapes_of("createIndexes", {"createIndexes": "clinics", "indexes": []}) == []


def test_text_round_trip_through_a_file(tmp_path: Path) -> None:
    recorder = ShapeRecorder()
    _send(recorder, "find", {"find": "c", "filter": {"a": 1}, "sort": {"b": 1}, "limit": 21})
    _send(recorder, "find", {"find": "c", "filter": {"a": 2}, "sort": {"b": 1}, "limit": 6})
    path = tmp_path / "shapes.json"
    dump(recorder.tallies, path)
    loaded = load(path)
    assert loaded.keys() == recorder.tallies.keys()
    (tally,) = loaded.values()
    assert (tally.count, tally.limits) == (2, {6, 21})
    assert next(iter(loaded)).text() == "c find {a: $eq} sort b 1"


def test_recorder_keeps_only_what_accept_allows_and_no_admin_commands() -> None:
    serving = False
    recorder = ShapeRecorder(accept=lambda: serving)
    _send(recorder, "find", {"find": "c", "filter": {"a": 1}})
    serving = True
    _send(recorder, "find", {"find": "c", "filter": {"b": 1}})
    _send(recorder, "listCollections", {"listCollections": 1}, database="admin")
    assert [shape.filter_doc() for shape in recorder.tallies] == [{"b": "$eq"}]


def _send(
    recorder: ShapeRecorder, name: str, command: dict[str, Any], database: str = "test_db"
) -> None:
    event = monitoring.CommandStartedEvent(
        command, database, request_id=1, connection_id=("127.0.0.1", 27017), operation_id=1
    )
    assert event.command_name == name
    recorder.started(event)
