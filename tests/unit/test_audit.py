"""Reconciliation's decision: did a pending record's write reach the database?"""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId

from enterprise.services.audit import settle

pytestmark = pytest.mark.unit

EVENT = ObjectId()
READ_IT = {"action": "update", "previous": EVENT}  # a later write read this one's version


def record(action: str, version: int, **fields: Any) -> dict[str, Any]:
    return {"_id": EVENT, "action": action, "version": version, "state": "pending", **fields}


def other(**fields: Any) -> dict[str, Any]:
    return {"_id": ObjectId(), "state": "committed", "previous": None, **fields}


@pytest.mark.parametrize(
    ("event", "live", "others", "outcome"),
    [
        # create: the id was the record's own choice, so the document's existence decides.
        (record("create", 1), {"version": 1, "auditId": EVENT}, [], "committed"),
        (record("create", 1), {"version": 4, "auditId": ObjectId()}, [], "committed"),
        (record("create", 1), None, [], "abandoned"),
        (record("create", 1), None, [other(action="delete", previous=EVENT)], "committed"),
        # update: the stamp at the version, or a later write that read that version.
        (record("update", 3), {"version": 3, "auditId": EVENT}, [], "committed"),
        (record("update", 3), {"version": 3, "auditId": ObjectId()}, [], "abandoned"),
        (record("update", 3), {"version": 2, "auditId": ObjectId()}, [], "abandoned"),
        (
            record("update", 3),
            {"version": 5},
            [other(**READ_IT)],
            "committed",
        ),
        (record("update", 3), {"version": 5}, [other(action="update")], "abandoned"),
        # delete: gone, unless another delete of it is the one recorded as committed.
        (record("delete", 2), None, [], "committed"),
        (record("delete", 2), None, [other(action="delete")], "abandoned"),
        (record("delete", 2), {"version": 2}, [], "abandoned"),
    ],
)
def test_settle_decides_from_the_evidence(
    event: dict[str, Any], live: dict[str, Any] | None, others: list[Any], outcome: str
) -> None:
    assert settle(event, live, [event, *others]) == outcome
