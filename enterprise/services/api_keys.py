"""API keys: create (raw key returned once), list, revoke, and authenticate with a cache."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any

from bson import ObjectId

from enterprise.auth import Principal, Role, key_hash, new_key
from enterprise.errors import InvalidInput, NotFound
from enterprise.repositories.api_keys import ApiKeysRepository


class ApiKeysService:
    """Authentication results are cached in process for `cache_seconds` (revocation delay).

    The cache is keyed by the presented key itself, so a cached request needs no hashing;
    like the request that carried it, that key lives only in this process's memory. Only
    its SHA-256 is ever stored or sent to the database.
    """

    def __init__(
        self, repository: ApiKeysRepository, *, cache_seconds: float = 10.0, cache_size: int = 1024
    ) -> None:
        self._repository = repository
        self._cache_seconds = cache_seconds
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
        stored = await self._repository.insert(
            {
                "keyHash": key_hash(raw),
                "name": name,
                "role": parsed_role.value,
                "organizationId": organization,
                "revokedAt": None,
            }
        )
        return raw, {k: v for k, v in stored.items() if k != "keyHash"}

    async def all(self) -> list[dict[str, Any]]:
        return await self._repository.all()

    async def revoke(self, key_id: str) -> None:
        if not await self._repository.revoke(ObjectId(key_id)):
            raise NotFound(f"no active key {key_id}")

    async def authenticate(self, raw_key: str) -> Principal | None:
        cached = self._cache.get(raw_key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        # Single flight: when an entry expires under load, one lookup serves every waiter.
        # Shielded, so a waiter cancelled by its deadline does not cancel it for the others.
        lookup = self._lookups.get(raw_key)
        if lookup is None:
            lookup = self._lookups[raw_key] = asyncio.ensure_future(self._lookup(raw_key))
            lookup.add_done_callback(lambda _: self._lookups.pop(raw_key, None))
        return await asyncio.shield(lookup)

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
