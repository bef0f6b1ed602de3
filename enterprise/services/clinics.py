"""Clinics belong to one organization; code is unique within it."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from enterprise.auth import Principal
from enterprise.cursor import SortSpec
from enterprise.errors import NotFound, ValidationFailed
from enterprise.querying import FilterSpec, ResourceSpec
from enterprise.repositories.base import Repository
from enterprise.schemas import Clinic, ClinicStatus
from enterprise.services.base import NamedService

BY_NAME: SortSpec = (("nameKey", 1),)
NEWEST: SortSpec = (("createdAt", -1),)
STATUSES = frozenset(s.value for s in ClinicStatus)

SPEC = ResourceSpec(
    name="clinics",
    fields=frozenset(
        {
            "organizationId",
            "name",
            "code",
            "status",
            "address",
            "address.line1",
            "address.city",
            "address.state",
            "address.postalCode",
            "address.country",
            "managerUserId",
            "createdAt",
            "updatedAt",
            "version",
        }
    ),
    sorts={"name": BY_NAME, "-createdAt": NEWEST},
    default_sort="name",
    filters={
        "status": FilterSpec("status", "enum", STATUSES),
        "organizationId": FilterSpec("organizationId", "objectid"),
        "state": FilterSpec("address.state", max_length=40),
        "city": FilterSpec("address.city", max_length=120),
    },
    item_budget="clinics",
    id_fields=frozenset({"organizationId"}),
)

# Search: an anchored prefix of the normalised name, within an organization when given.
SEARCH_SPEC = ResourceSpec(
    name="clinics",
    fields=SPEC.fields,
    sorts={"name": BY_NAME},
    default_sort="name",
    filters={**SPEC.filters, "q": FilterSpec("nameKey", "prefix", max_length=100)},
    list_budget="search",
)


class ClinicsService(NamedService):
    spec = SPEC
    schema = Clinic

    def __init__(self, repository: Repository, organizations: Repository, **kwargs: Any) -> None:
        super().__init__(repository, **kwargs)
        self._organizations = organizations

    async def prepare(
        self, principal: Principal, fields: dict[str, Any], parent: ObjectId | None
    ) -> dict[str, Any]:
        if parent is None:
            raise ValidationFailed("clinics are created under organizations/{id}/clinics")
        scope = {} if principal.tenant is None else {"_id": principal.tenant}
        if await self._organizations.get(parent, scope, {"_id": 1}) is None:
            raise NotFound(f"organization {parent} was not found")
        return {**fields, "organizationId": parent}
