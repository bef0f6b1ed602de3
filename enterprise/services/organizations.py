"""Organizations: platform admins create and delete; tenants see only themselves."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from enterprise.auth import Action, Principal
from enterprise.cursor import SortSpec
from enterprise.errors import Conflict
from enterprise.querying import FilterSpec, ResourceSpec
from enterprise.repositories.base import Document
from enterprise.repositories.clinics import ClinicsRepository
from enterprise.schemas import Organization, OrganizationStatus, SubscriptionTier
from enterprise.services.base import NamedService, Versioned

BY_NAME: SortSpec = (("nameKey", 1),)
NEWEST: SortSpec = (("createdAt", -1),)

SPEC = ResourceSpec(
    name="organizations",
    fields=frozenset(
        {
            "name",
            "status",
            "subscriptionTier",
            "subscriptionEndDate",
            "createdAt",
            "updatedAt",
            "version",
        }
    ),
    sorts={"name": BY_NAME, "-createdAt": NEWEST},
    default_sort="name",
    filters={
        "status": FilterSpec("status", "enum", frozenset(s.value for s in OrganizationStatus)),
        "subscriptionTier": FilterSpec(
            "subscriptionTier", "enum", frozenset(t.value for t in SubscriptionTier)
        ),
    },
    item_budget="organizations",
)


class OrganizationsService(NamedService):
    spec = SPEC
    schema = Organization
    tenant_field = "_id"

    def __init__(self, repository: Any, clinics: ClinicsRepository, **kwargs: Any) -> None:
        super().__init__(repository, **kwargs)
        self._clinics = clinics

    async def create(
        self, principal: Principal, body: Any, parent: ObjectId | None = None
    ) -> Versioned:
        principal.require(Action.ADMIN)
        return await super().create(principal, body, parent)

    async def before_delete(self, principal: Principal, current: Document) -> None:
        principal.require(Action.ADMIN)
        if await self._clinics.any_in_organization(current["_id"]):
            raise Conflict(
                "the organization still has clinics; delete or move them first", field="clinics"
            )
