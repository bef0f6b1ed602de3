"""api_keys collection: hashes only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId

from enterprise.repositories.base import Repository
from indexes import UNIQUE_FIELDS


class ApiKeysRepository(Repository):
    collection_name = "api_keys"
    unique_fields = UNIQUE_FIELDS["api_keys"]

    async def by_hash(self, digest: str) -> dict[str, Any] | None:
        with self._translated():
            return await self._collection.find_one({"keyHash": digest, "revokedAt": None})

    async def all(self) -> list[dict[str, Any]]:
        with self._translated():
            cursor = self._collection.find({}, {"keyHash": 0}, sort=[("createdAt", 1)])
            return await cursor.to_list(None)

    async def revoke(self, key_id: ObjectId) -> bool:
        with self._translated():
            result = await self._collection.update_one(
                {"_id": key_id, "revokedAt": None},
                {"$set": {"revokedAt": datetime.now(UTC)}, "$inc": {"version": 1}},
            )
        return result.modified_count == 1
