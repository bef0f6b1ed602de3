"""The after-write step: every observer hears of a committed write, in order."""

from __future__ import annotations

import pytest
from bson import ObjectId

from enterprise.auth import Principal, Role
from enterprise.errors import (
    Conflict,
    DeadlineExceeded,
    PreconditionFailed,
    Unavailable,
    ValidationFailed,
)
from enterprise.services.writes import (
    AfterWrite,
    Committed,
    Intent,
    WriteAction,
    changed,
    completed,
    recorded,
)

pytestmark = pytest.mark.unit

WRITE = Committed(
    WriteAction.UPDATE,
    "clinics",
    Principal("k1", "admin", Role.PLATFORM_ADMIN, None),
    {"_id": ObjectId(), "version": 1},
    {"_id": ObjectId(), "version": 2},
    ["clinics"],
)


class Recorder:
    def __init__(self, name: str, heard: list[tuple[str, Committed]], fail: bool = False) -> None:
        self.name, self.heard, self.fail = name, heard, fail

    async def committed(self, write: Committed) -> None:
        self.heard.append((self.name, write))
        if self.fail:
            raise RuntimeError(f"{self.name} failed")


async def test_observers_hear_each_write_in_the_order_listed() -> None:
    heard: list[tuple[str, Committed]] = []
    after_write = AfterWrite([Recorder("cache", heard), Recorder("audit", heard)])

    await after_write(WRITE)

    assert heard == [("cache", WRITE), ("audit", WRITE)]


async def test_a_failing_observer_fails_the_write_step_and_stops_the_rest() -> None:
    heard: list[tuple[str, Committed]] = []
    after_write = AfterWrite([Recorder("cache", heard, fail=True), Recorder("audit", heard)])

    with pytest.raises(RuntimeError, match="cache failed"):
        await after_write(WRITE)
    assert [name for name, _ in heard] == ["cache"]


class Journal:
    def __init__(self) -> None:
        self.intended: list[Intent] = []
        self.abandoned: list[Intent] = []

    async def intend(self, intent: Intent) -> None:
        self.intended.append(intent)

    async def abandon(self, intent: Intent) -> None:
        self.abandoned.append(intent)


INTENT = Intent(
    ObjectId(),
    WriteAction.UPDATE,
    "clinics",
    WRITE.principal,
    ObjectId(),
    ObjectId(),
    2,
    None,
    {"name": "a"},
    {"name": "b"},
)


async def test_a_journaled_write_is_stamped_with_its_intent() -> None:
    journal = Journal()

    stamp = await AfterWrite([], journal=journal).intend(INTENT)

    assert stamp == {"auditId": INTENT.id}
    assert journal.intended == [INTENT]
    assert await AfterWrite([]).intend(INTENT) == {}


@pytest.mark.parametrize(
    ("error", "dropped"),
    [
        (PreconditionFailed("stale"), True),
        (Conflict("taken"), True),
        (ValidationFailed("bad"), True),
        (Unavailable("down"), False),  # a lost connection may have applied the write
        (DeadlineExceeded("late"), False),
        (TimeoutError(), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
async def test_only_a_certain_refusal_drops_the_intent(error: BaseException, dropped: bool) -> None:
    journal = Journal()

    await AfterWrite([], journal=journal).failed(INTENT, error)

    assert journal.abandoned == ([INTENT] if dropped else [])


def test_changes_name_only_what_moved_and_never_secrets_or_bookkeeping() -> None:
    found = {
        "_id": ObjectId(),
        "name": "Old",
        "status": "ACTIVE",
        "managerUserId": "m1",
        "nameKey": "old",
        "version": 3,
        "keyHash": "abc",
    }
    written = {**found, "name": "New", "nameKey": "new", "version": 4, "keyHash": "def"}
    del written["managerUserId"]

    before, after = changed(found, written)

    assert before == {"name": "Old", "managerUserId": "m1"}
    assert after == {"name": "New", "managerUserId": None}
    assert recorded(found) == {"name": "Old", "status": "ACTIVE", "managerUserId": "m1"}


def test_a_committed_update_fills_in_what_its_intent_could_not_know() -> None:
    stamp, organization = ObjectId(), ObjectId()
    intent = Intent(ObjectId(), WriteAction.UPDATE, "clinics", WRITE.principal, ObjectId(), None)
    found = {"_id": intent.document_id, "name": "a", "version": 4, "auditId": stamp}
    written = {**found, "name": "b", "version": 5, "auditId": intent.id}

    done = completed(intent, found, written, organization)

    assert (done.version, done.previous, done.organization_id) == (5, stamp, organization)
    assert (done.before, done.after) == ({"name": "a"}, {"name": "b"})
    deleted = completed(intent._replace(action=WriteAction.DELETE), found, None, organization)
    assert (deleted.version, deleted.before, deleted.after) == (4, {"name": "a"}, None)


class BrokenJournal(Journal):
    async def abandon(self, intent: Intent) -> None:
        raise Unavailable("the database is unavailable")


async def _write(after_write: AfterWrite, intents: list[Intent], error: Exception) -> None:
    """A write that journals each attempt's intent, then fails with `error`."""
    async with after_write.journaled() as entry:
        for intent in intents:
            await entry.intend(intent)
        raise error


async def test_a_refused_write_drops_the_intent_of_its_latest_attempt() -> None:
    journal = Journal()
    retried = INTENT._replace(version=3)

    with pytest.raises(PreconditionFailed):
        await _write(AfterWrite([], journal=journal), [INTENT, retried], PreconditionFailed("x"))

    assert journal.abandoned == [retried]


async def test_when_dropping_fails_the_write_error_is_what_surfaces(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(Conflict, match="taken"):
        await _write(AfterWrite([], journal=BrokenJournal()), [INTENT], Conflict("taken"))

    assert f"intent {INTENT.id} of a refused write left for reconciliation" in caplog.text
