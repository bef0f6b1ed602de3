"""api_keys collection: hashes only."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument

from enterprise.repositories.base import Repository
from indexes import UNIQUE_FIELDS


class ApiKeysRepository(Repository):
    collection_name = "api_keys"
    unique_fields = UNIQUE_FIELDS["api_keys"]

    async def by_hash(self, digest: str) -> dict[str, Any] | None:
        async with self._translated():
            return await self._collection.find_one({"keyHash": digest, "revokedAt": None})

    async def all(self) -> list[dict[str, Any]]:
        async with self._translated():
            cursor = self._collection.find({}, {"keyHash": 0}, sort=[("createdAt", 1)])
            return await cursor.to_list(None)

    async def revoke(
        self, key_id: ObjectId, version: int, at: datetime, stamp: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Revoke an active key still at `version`; the key as revoked, or None when it was
        revoked or changed meanwhile. (No projection: FerretDB v1 refuses one here.)"""
        async with self._translated(write=True):
            return await self._collection.find_one_and_update(
                # A key written before versions existed has none: version 0 matches it.
                {"_id": key_id, "revokedAt": None, "version": version or None},
                {"$set": {"revokedAt": at, **stamp}, "$inc": {"version": 1}},
                return_document=ReturnDocument.AFTER,
            )
