"""Test-only fault hooks: kill the worker around a write, as a crash or an OOM kill would.

Enabled by `TEST_FAULT_CRASH` (refused unless `ENTERPRISE_DEV=1`) and wired by the app factory
only then, so the production write path carries no check for them. The faults test of the
audit trail uses them to leave a pending record behind (tests/faults/test_audit_crash.py).
"""

from __future__ import annotations

import os
import signal

from enterprise.services.writes import Committed, Intent, WriteJournal

CRASH_POINTS = ("", "before-write", "after-write")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class CrashBeforeWrite:
    """A journal that records the intent, then kills the process before the write is sent."""

    def __init__(self, journal: WriteJournal) -> None:
        self._journal = journal

    async def intend(self, intent: Intent) -> None:
        await self._journal.intend(intent)
        _die()

    async def abandon(self, intent: Intent) -> None:
        await self._journal.abandon(intent)


class CrashAfterWrite:
    """An observer placed before the audit trail's: the write is in, its record pending."""

    async def committed(self, write: Committed) -> None:
        _die()
