from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from bson import ObjectId

from enterprise.resources.base import dumps

pytestmark = pytest.mark.unit


class _Id(ObjectId):
    pass


def test_ids_are_strings_and_times_iso_8601() -> None:
    oid = ObjectId()
    document = {
        "id": oid,
        "organizationId": _Id(oid.binary),
        "ids": [oid],
        "at": datetime(2026, 12, 2, 16, 0, tzinfo=UTC),
        "naive": datetime(2026, 12, 2, 16, 0, 0, 880000),  # an export's: UTC
    }
    assert orjson.loads(dumps(document)) == {
        "id": str(oid),
        "organizationId": str(oid),
        "ids": [str(oid)],
        "at": "2026-12-02T16:00:00Z",
        "naive": "2026-12-02T16:00:00.880000Z",
    }


def test_anything_else_is_refused_not_guessed() -> None:
    with pytest.raises(TypeError):
        dumps({"price": object()})
