"""Driver errors → the API's errors (`enterprise/repositories/errors.py`): what a server that
stops in the middle of an operation answers is an outage, never a 500."""

from __future__ import annotations

import pytest
from pymongo.errors import OperationFailure

from enterprise.errors import DeadlineExceeded, Unavailable
from enterprise.repositories.errors import is_outage, translated

pytestmark = pytest.mark.unit

# As FerretDB v2 answered a write while it stopped (outage test, 2026-12-02).
CONTEXT_CANCELED = OperationFailure(
    "context canceled",
    1,
    {"ok": 0.0, "errmsg": "context canceled", "code": 1, "codeName": "InternalError"},
)
SHUTDOWN = OperationFailure("interrupted at shutdown", 11600)
STEPPED_DOWN = OperationFailure("not primary", 10107)
REFUSED = OperationFailure("unknown operator: $bogus", 2)  # BadValue: the server is serving


def _raise_in(ex: Exception, *, write: bool) -> None:
    with translated("clinics", {}, write=write):
        raise ex


@pytest.mark.parametrize("ex", [CONTEXT_CANCELED, SHUTDOWN, STEPPED_DOWN], ids=str)
def test_an_operation_abandoned_by_a_stopping_server_is_an_outage(ex: OperationFailure) -> None:
    assert is_outage(ex)
    with pytest.raises(Unavailable):  # a read: nothing was changed, retry later
        _raise_in(ex, write=False)
    with pytest.raises(DeadlineExceeded):  # a write may have been applied: outcome unknown
        _raise_in(ex, write=True)


def test_a_refusal_from_a_serving_server_is_not_an_outage() -> None:
    assert not is_outage(REFUSED)
    assert not is_outage(OperationFailure("context deadline exceeded by the planner", 2))
    with pytest.raises(OperationFailure):
        _raise_in(REFUSED, write=False)
