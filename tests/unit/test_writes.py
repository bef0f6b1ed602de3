"""The after-write step: every observer hears of a committed write, in order."""

from __future__ import annotations

import pytest
from bson import ObjectId

from enterprise.auth import Principal, Role
from enterprise.services.writes import AfterWrite, Committed, WriteAction

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
