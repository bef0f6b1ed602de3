"""The one step around a write: a journal hears of it before it is sent (`Intent`), and its
observers (cache invalidation, the audit trail) hear of every committed create, update and
delete, in order, before the client's 2xx.

Services describe what they are about to write once (`Intent`) and what they committed once
(`Committed`) and call `AfterWrite`; they never call an observer's own API. A new concern is
one more observer in the app factory's list, not a call added to every write path.

Why a journal before the write: there are no transactions on FerretDB, so a process that
dies between the write and its record would otherwise leave a write nobody can account for.
The journal (the audit trail) records the intent first; the write stamps the intent's id on
the document (`auditId`); the record is completed after. `python -m enterprise audit
reconcile` settles what a crash left pending (enterprise/services/audit.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

from bson import ObjectId

from enterprise.auth import Principal
from enterprise.cache import ResponseCache
from enterprise.errors import DomainError
from enterprise.repositories.base import Document

logger = logging.getLogger(__name__)


class WriteAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


# What a journaled write stamps on the document: the id of the intent that made its version.
STAMP_FIELD = "auditId"


class Intent(NamedTuple):
    """A write about to be sent, told to the journal first, and completed once it commits.

    `version` is the version the write makes (for a delete: the version it removes);
    `previous` the intent id stamped on the version the write read (None for a create or a
    document no journaled write made). `before`/`after` are the fields the write changes, as
    found and as written (None for a create's before and a delete's after).

    An update is journaled before it reads the document (so its compare-and-set window is no
    wider than without a journal): until it commits, its version, organization (for a
    platform-wide key), previous and changes are unknown (None).
    """

    id: ObjectId
    action: WriteAction
    collection: str
    principal: Principal
    document_id: ObjectId
    organization_id: ObjectId | None
    version: int | None = None
    previous: ObjectId | None = None
    before: Document | None = None
    after: Document | None = None


class Committed(NamedTuple):
    """A write the database acknowledged.

    `before` is the document as the write found it (None for a create); `after` as it left it
    (None for a delete). `generations` names the cached views the write changed; `intent`
    the journal entry it completes (None when no journal is wired).
    """

    action: WriteAction
    collection: str
    principal: Principal
    before: Document | None
    after: Document | None
    generations: Sequence[str]
    intent: Intent | None = None


class WriteObserver(Protocol):
    async def committed(self, write: Committed) -> None: ...


class WriteJournal(Protocol):
    async def intend(self, intent: Intent) -> None:
        """Record `intent` durably before the write is sent (again, same id, on a retry)."""

    async def abandon(self, intent: Intent) -> None:
        """Forget `intent`: its write was refused and certainly not applied."""


def not_applied(error: BaseException) -> bool:
    """Whether a failed write certainly changed nothing: a refusal (4xx) decided before or
    by the conditional write. A 5xx (timeout, lost connection) may have applied it, so its
    intent stays pending for reconciliation."""
    return isinstance(error, DomainError) and error.status < 500


# Never in a journal: secrets (a key's hash) and bookkeeping every write moves.
UNRECORDED = frozenset(
    {"_id", "keyHash", STAMP_FIELD, "version", "createdAt", "updatedAt", "nameKey"}
)


def recorded(document: Document) -> Document:
    """A document's fields as an audit record may show them."""
    return {k: v for k, v in document.items() if k not in UNRECORDED}


def changed(found: Document, written: Document) -> tuple[Document, Document]:
    """(before, after) of the fields an update changed; a removed field is None after."""
    old, new = recorded(found), recorded(written)
    names = [name for name in {**old, **new} if old.get(name) != new.get(name)]
    return {name: old.get(name) for name in names}, {name: new.get(name) for name in names}


def completed(
    intent: Intent,
    before: Document | None,
    after: Document | None,
    organization_id: ObjectId | None,
) -> Intent:
    """`intent` with what only the committed write knows: the version it made (a delete: the
    version it removed), the stamp it read, its organization and the fields it changed."""
    if before is not None and after is not None:
        changes: tuple[Document | None, Document | None] = changed(before, after)
    else:
        changes = (recorded(before) if before else None, recorded(after) if after else None)
    written = after if after is not None else before
    assert written is not None
    return intent._replace(
        version=written["version"],
        previous=before.get(STAMP_FIELD) if before is not None else None,
        organization_id=organization_id,
        before=changes[0],
        after=changes[1],
    )


class AfterWrite:
    """Runs every observer for a committed write, in the order given.

    An observer's failure propagates: the write is in the database, but the client is not
    told it succeeded without the steps that make it visible (the cache observer's own
    failure mode, Redis down, is handled inside `ResponseCache.bump`).
    """

    def __init__(
        self, observers: Sequence[WriteObserver], *, journal: WriteJournal | None = None
    ) -> None:
        self._observers = tuple(observers)
        self._journal = journal

    async def intend(self, intent: Intent) -> dict[str, Any]:
        """Journal `intent`; returns the fields the write must set on the document."""
        if self._journal is None:
            return {}
        await self._journal.intend(intent)
        return {STAMP_FIELD: intent.id}

    async def failed(self, intent: Intent | None, error: BaseException) -> None:
        """The write of `intent` raised `error`: drop the intent if nothing was applied.

        Dropping it may fail too (the database is down); the intent then stays pending and
        reconciliation abandons it, so the write's own error is what the client hears.
        """
        if intent is None or self._journal is None or not not_applied(error):
            return
        try:
            await self._journal.abandon(intent)
        except DomainError as ex:
            logger.warning(
                "intent %s of a refused write left for reconciliation: %s", intent.id, ex
            )

    @asynccontextmanager
    async def journaled(self) -> AsyncIterator[Journaled]:
        """One write's journal entry; if the write raises, `failed` decides about its intent."""
        entry = Journaled(self)
        try:
            yield entry
        except BaseException as ex:
            await self.failed(entry.intent, ex)
            raise

    async def __call__(self, write: Committed) -> None:
        for observer in self._observers:
            await observer.committed(write)


class Journaled:
    """The intent one write journaled, once it has (None before: nothing to drop)."""

    def __init__(self, after_write: AfterWrite) -> None:
        self._after_write = after_write
        self.intent: Intent | None = None

    async def intend(self, intent: Intent) -> dict[str, Any]:
        """Journal `intent`; returns the fields the write must set on the document."""
        self.intent = intent
        return await self._after_write.intend(intent)


class CacheInvalidation:
    """Moves the generations a write changed, so no cached view shows the old data."""

    def __init__(self, cache: ResponseCache) -> None:
        self._cache = cache

    async def committed(self, write: Committed) -> None:
        await self._cache.bump(list(write.generations))
