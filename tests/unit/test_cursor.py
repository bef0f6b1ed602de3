from __future__ import annotations

from datetime import UTC, datetime

import pytest
from bson import ObjectId

from enterprise.cursor import Cursor, CursorCodec, binding, full_sort, keyset_filter
from enterprise.errors import InvalidInput

pytestmark = pytest.mark.unit
CODEC = CursorCodec("secret")
BOUND = binding("/api/v1/clinics", {"status": "ACTIVE"}, (("nameKey", 1), ("_id", 1)))


def test_round_trip_keeps_types() -> None:
    values = ("acme", datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC), ObjectId())
    token = CODEC.encode(Cursor(values, "next"), BOUND)
    assert CODEC.decode(token, BOUND) == Cursor(values, "next")


def test_tampered_signature_is_refused() -> None:
    token = CODEC.encode(Cursor(("a", ObjectId()), "next"), BOUND)
    body, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    with pytest.raises(InvalidInput, match="tampered"):
        CODEC.decode(f"{body}.{flipped}", BOUND)


def test_another_secret_is_refused() -> None:
    token = CursorCodec("other").encode(Cursor(("a",), "next"), BOUND)
    with pytest.raises(InvalidInput):
        CODEC.decode(token, BOUND)


def test_cursor_is_bound_to_filter_and_sort() -> None:
    token = CODEC.encode(Cursor(("a", ObjectId()), "next"), BOUND)
    other_filter = binding("/api/v1/clinics", {"status": "CLOSED"}, (("nameKey", 1), ("_id", 1)))
    other_sort = binding("/api/v1/clinics", {"status": "ACTIVE"}, (("createdAt", -1), ("_id", -1)))
    for bound in (other_filter, other_sort):
        with pytest.raises(InvalidInput, match="another filter or sort"):
            CODEC.decode(token, bound)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "!!!.???"])
def test_garbage_is_a_400(garbage: str) -> None:
    with pytest.raises(InvalidInput):
        CODEC.decode(garbage, BOUND)


def test_full_sort_appends_id_in_last_direction() -> None:
    assert full_sort((("createdAt", -1),)) == (("createdAt", -1), ("_id", -1))
    assert full_sort((("nameKey", 1),)) == (("nameKey", 1), ("_id", 1))


def test_keyset_filter_expands_or_branches() -> None:
    oid = ObjectId()
    assert keyset_filter((("nameKey", 1), ("_id", 1)), ("m", oid)) == {
        "$or": [{"nameKey": {"$gt": "m"}}, {"nameKey": "m", "_id": {"$gt": oid}}]
    }
    assert keyset_filter((("createdAt", -1), ("_id", -1)), (1, oid))["$or"][0] == {
        "createdAt": {"$lt": 1}
    }
