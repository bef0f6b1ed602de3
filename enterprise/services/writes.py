"""The one step after a committed write: its observers (cache invalidation; next, the audit
trail) hear of every create, update and delete, in order, before the client's 2xx.

Services describe what they committed once (`Committed`) and call `AfterWrite`; they never
call an observer's own API. A new concern is one more observer in the app factory's list,
not a call added to every write path.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import NamedTuple, Protocol

from enterprise.auth import Principal
from enterprise.cache import ResponseCache
from enterprise.repositories.base import Document


class WriteAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class Committed(NamedTuple):
    """A write the database acknowledged.

    `before` is the document as the write found it (None for a create); `after` as it left it
    (None for a delete). `generations` names the cached views the write changed.
    """

    action: WriteAction
    collection: str
    principal: Principal
    before: Document | None
    after: Document | None
    generations: Sequence[str]


class WriteObserver(Protocol):
    async def committed(self, write: Committed) -> None: ...


class AfterWrite:
    """Runs every observer for a committed write, in the order given.

    An observer's failure propagates: the write is in the database, but the client is not
    told it succeeded without the steps that make it visible (the cache observer's own
    failure mode, Redis down, is handled inside `ResponseCache.bump`).
    """

    def __init__(self, observers: Sequence[WriteObserver]) -> None:
        self._observers = tuple(observers)

    async def __call__(self, write: Committed) -> None:
        for observer in self._observers:
            await observer.committed(write)


class CacheInvalidation:
    """Moves the generations a write changed, so no cached view shows the old data."""

    def __init__(self, cache: ResponseCache) -> None:
        self._cache = cache

    async def committed(self, write: Committed) -> None:
        await self._cache.bump(list(write.generations))
