"""clinics collection."""

from __future__ import annotations

from bson import ObjectId

from enterprise.repositories.base import Repository
from indexes import UNIQUE_FIELDS


class ClinicsRepository(Repository):
    collection_name = "clinics"
    unique_fields = UNIQUE_FIELDS["clinics"]

    async def any_in_organization(self, organization_id: ObjectId) -> bool:
        return await self.exists({"organizationId": organization_id})
