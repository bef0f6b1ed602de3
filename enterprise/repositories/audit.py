"""audit_events: one record per write, written pending before it and settled after.

States: `pending` (journaled, write sent or about to be), `committed` (the write is in the
database), `abandoned` (reconciliation found the write never applied). Records are never
edited otherwise; they leave by retention only (a TTL index, or `audit prune`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bson import ObjectId

from enterprise.repositories.base import Document, Repository, utcnow

PENDING, COMMITTED, ABANDONED = "pending", "committed", "abandoned"


class AuditRepository(Repository):
    collection_name = "audit_events"

    async def record(self, event: Document) -> None:
        """Write a pending record; a retried write replaces its own (same `_id`)."""
        async with self._translated(bounded=False):
            await self._collection.replace_one({"_id": event["_id"]}, event, upsert=True)

    async def settle(
        self, event_id: ObjectId, state: str, known: Mapping[str, Any] | None = None
    ) -> bool:
        """Pending → `state`, with what became `known` (version, changes); False when the
        record is no longer pending (settled already)."""
        async with self._translated(bounded=False):
            result = await self._collection.update_one(
                {"_id": event_id, "state": PENDING},
                {"$set": {**(known or {}), "state": state, "settledAt": utcnow()}},
            )
        return result.modified_count == 1

    async def discard(self, event_id: ObjectId) -> None:
        """Remove a pending record whose write was refused (nothing was applied)."""
        async with self._translated(bounded=False):
            await self._collection.delete_one({"_id": event_id, "state": PENDING})

    async def pending(self, before: datetime, limit: int) -> list[Document]:
        """The oldest pending records journaled before `before`."""
        async with self._translated():
            cursor = self._collection.find(
                {"state": PENDING, "at": {"$lt": before}},
                sort=[("at", 1), ("_id", 1)],
                limit=limit,
            )
            return await cursor.to_list(limit)

    async def of_document(self, document_id: ObjectId) -> list[Document]:
        """Every record of one document, newest first."""
        async with self._translated():
            cursor = self._collection.find(
                {"documentId": document_id},
                {"state": 1, "action": 1, "version": 1, "previous": 1, "at": 1},
                sort=[("at", -1), ("_id", -1)],
            )
            return await cursor.to_list(None)

    async def written(self, collection: str, document_id: ObjectId) -> Document | None:
        """The version, stamp and organization a document carries now (None: it is gone)."""
        async with self._translated():
            found: Mapping[str, Any] | None = await self._collection.database[collection].find_one(
                {"_id": document_id}, {"version": 1, "auditId": 1}
            )
        return dict(found) if found is not None else None

    async def prune(self, before: datetime) -> int:
        async with self._translated(bounded=False):
            result = await self._collection.delete_many({"at": {"$lt": before}})
        return int(result.deleted_count)

    async def expires_itself(self) -> bool:
        """Whether a TTL index is live on the collection (the server then prunes)."""
        async with self._translated():
            cursor = await self._collection.list_indexes()
            indexes = await cursor.to_list(None)
        return any("expireAfterSeconds" in index for index in indexes)
