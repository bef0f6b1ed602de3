"""API keys: create (raw key returned once), list, revoke, and authenticate with a cache."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any

from bson import ObjectId

from enterprise.auth import Principal, Role, key_hash, new_key
from enterprise.errors import InvalidInput, NotFound, Unavailable
from enterprise.repositories.api_keys import ApiKeysRepository
from enterprise.repositories.base import Document, utcnow
from enterprise.services.writes import (
    STAMP_FIELD,
    AfterWrite,
    Committed,
    Intent,
    WriteAction,
    recorded,
)

# Who writes keys from `python -m enterprise keys`: the operator at the command line.
COMMAND_LINE = Principal(
    key_id="cli", name="command line", role=Role.PLATFORM_ADMIN, organization_id=None
)


logger = logging.getLogger(__name__)


class ApiKeysService:
    """Authentication results are cached in process for `cache_seconds` (revocation delay).

    The cache is keyed by the presented key itself, so a cached request needs no hashing;
    like the request that carried it, that key lives only in this process's memory. Only
    its SHA-256 is ever stored or sent to the database.

    With `after_write`, creates and revocations are journaled in the audit trail like every
    other write (by `actor`, the command line by default); the hash never is.

    While the database is unavailable (its breaker open), a key that was valid when its
    entry expired stays valid for `stale_seconds` more: without it every request, cached
    reads included, would fail 10 s into an outage. Unknown keys are still refused. Such a
    key's requests wait for its new lookup `lookup_patience_s` at most (50 ms; a lookup takes
    a few): in an outage that lookup is the breaker's trial call, seconds long, and the
    request that started it would otherwise wait seconds for a 503 the breaker gives at once.
    Revocation is seen within `cache_seconds` plus one lookup either way.
    """

    def __init__(
        self,
        repository: ApiKeysRepository,
        *,
        cache_seconds: float = 10.0,
        cache_size: int = 1024,
        after_write: AfterWrite | None = None,
        actor: Principal = COMMAND_LINE,
        stale_seconds: float = 60.0,
        lookup_patience_s: float = 0.05,
    ) -> None:
        self._repository = repository
        self._after_write = after_write or AfterWrite(())
        self._actor = actor
        self._cache_seconds = cache_seconds
        self._stale_seconds = stale_seconds
        self._patience_s = lookup_patience_s
        self._cache_size = cache_size
        self._cache: OrderedDict[str, tuple[float, Principal | None]] = OrderedDict()
        self._lookups: dict[str, asyncio.Future[Principal | None]] = {}

    async def create(
        self, name: str, role: str, organization_id: str | None
    ) -> tuple[str, dict[str, Any]]:
        try:
            parsed_role = Role(role)
        except ValueError as ex:
            raise InvalidInput(f"role must be one of {', '.join(r.value for r in Role)}") from ex
        organization = ObjectId(organization_id) if organization_id else None
        if parsed_role in (Role.ORG_ADMIN, Role.ORG_READER) and organization is None:
            raise InvalidInput(f"a {parsed_role.value} key needs an organization")
        raw = new_key()
        fields: Document = {
            "keyHash": key_hash(raw),
            "name": name,
            "role": parsed_role.value,
            "organizationId": organization,
            "revokedAt": None,
        }
        async with self._after_write.journaled() as entry:

            async def journal(document: Document) -> dict[str, Any]:
                return await entry.intend(
                    self._intent(WriteAction.CREATE, document, 1, None, recorded(document))
                )

            stored = await self._repository.insert(fields, journal=journal)
        assert entry.intent is not None
        await self._committed(WriteAction.CREATE, None, stored, entry.intent)
        return raw, {k: v for k, v in stored.items() if k != "keyHash"}

    async def all(self) -> list[dict[str, Any]]:
        return await self._repository.all()

    async def revoke(self, key_id: str) -> None:
        current = await self._repository.get(ObjectId(key_id), {"revokedAt": None}, None)
        if current is None:
            raise NotFound(f"no active key {key_id}")
        version = current.get("version", 0)
        revoked = utcnow()
        intent = self._intent(
            WriteAction.UPDATE, current, version + 1, {"revokedAt": None}, {"revokedAt": revoked}
        )
        async with self._after_write.journaled() as entry:
            stamp = await entry.intend(intent)
            after = await self._repository.revoke(current["_id"], version, revoked, stamp)
            if after is None:
                raise NotFound(f"no active key {key_id} (it changed meanwhile)")
        await self._committed(WriteAction.UPDATE, current, after, intent)

    def _intent(
        self,
        action: WriteAction,
        document: Document,
        version: int,
        before: Document | None,
        after: Document | None,
    ) -> Intent:
        return Intent(
            ObjectId(),
            action,
            "api_keys",
            self._actor,
            document["_id"],
            document.get("organizationId"),
            version,
            document.get(STAMP_FIELD),
            before,
            after,
        )

    async def _committed(
        self, action: WriteAction, before: Document | None, after: Document, intent: Intent
    ) -> None:
        # No cached view shows keys; authentication's own cache expires by itself.
        await self._after_write(
            Committed(action, "api_keys", self._actor, before, after, (), intent)
        )

    def cached(self, raw_key: str) -> Principal | None:
        """The principal of a key authenticated less than `cache_seconds` ago, with no I/O;
        None when it must be looked up (or is unknown)."""
        cached = self._cache.get(raw_key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        return None

    async def authenticate(self, raw_key: str) -> Principal | None:
        cached = self._cache.get(raw_key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        # Single flight: when an entry expires under load, one lookup serves every waiter.
        # Shielded, so a waiter cancelled by its deadline does not cancel it for the others.
        lookup = self._lookups.get(raw_key)
        if lookup is not None and self._still_known(cached):
            # A lookup of this key is already under way, for a key that was valid a moment
            # ago: don't queue behind it. In an outage that lookup is the breaker's one trial
            # call and may take seconds; every other request of the key would wait that long
            # for an answer the cache or a fast 503 gives at once. Revocation is still seen
            # within `cache_seconds` plus one lookup.
            assert cached is not None
            return cached[1]
        if lookup is None:
            lookup = self._lookups[raw_key] = asyncio.ensure_future(self._lookup(raw_key))
            lookup.add_done_callback(lambda done: self._settled(raw_key, done))
        if not self._still_known(cached):
            return await asyncio.shield(lookup)
        assert cached is not None
        try:
            return await asyncio.wait_for(asyncio.shield(lookup), self._patience_s)
        except (TimeoutError, Unavailable):
            return cached[1]  # valid a moment ago; the lookup goes on, for the next requests

    def _settled(self, raw_key: str, lookup: asyncio.Future[Principal | None]) -> None:
        self._lookups.pop(raw_key, None)
        if lookup.cancelled():
            return
        # Read here, or a lookup nobody waited for to its end is reported by asyncio as an
        # "exception never retrieved". Unavailable is the outage its requests were answered
        # through (the breaker logs it); anything else is a defect, and said so.
        error = lookup.exception()
        if error is not None and not isinstance(error, Unavailable):
            logger.error("API key lookup failed", exc_info=error)

    def _still_known(self, cached: tuple[float, Principal | None] | None) -> bool:
        """A valid key whose entry expired less than `stale_seconds` ago."""
        return (
            cached is not None
            and cached[1] is not None
            and time.monotonic() - cached[0] <= self._stale_seconds
        )

    async def _lookup(self, raw_key: str) -> Principal | None:
        document = await self._repository.by_hash(key_hash(raw_key))
        principal = None
        if document is not None:
            principal = Principal(
                key_id=str(document["_id"]),
                name=document["name"],
                role=Role(document["role"]),
                organization_id=document.get("organizationId"),
            )
        self._cache[raw_key] = (time.monotonic() + self._cache_seconds, principal)
        self._cache.move_to_end(raw_key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return principal
