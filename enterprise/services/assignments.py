"""Provider-clinic assignments; the organization is denormalised from the clinic."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from enterprise.auth import Action, Principal
from enterprise.cursor import SortSpec
from enterprise.errors import NotFound, ValidationFailed
from enterprise.querying import FilterSpec, ListQuery, ResourceSpec, object_id
from enterprise.repositories.base import Document, Repository, utcnow
from enterprise.schemas import Assignment
from enterprise.services.base import CrudService, Page

NEWEST: SortSpec = (("assignedAt", -1),)

SPEC = ResourceSpec(
    name="assignments",
    fields=frozenset(
        {
            "providerId",
            "clinicId",
            "organizationId",
            "isActive",
            "isPrimaryClinic",
            "roles",
            "assignedAt",
            "endedAt",
            "createdAt",
            "updatedAt",
            "version",
        }
    ),
    sorts={"-assignedAt": NEWEST},
    default_sort="-assignedAt",
    filters={
        "providerId": FilterSpec("providerId", max_length=64),
        "clinicId": FilterSpec("clinicId", "objectid"),
        "organizationId": FilterSpec("organizationId", "objectid"),
        "isActive": FilterSpec("isActive", "bool"),
        "isPrimaryClinic": FilterSpec("isPrimaryClinic", "bool"),
    },
    item_budget="assignments",
    list_budget="assignments",
    id_fields=frozenset({"clinicId", "organizationId"}),
)

# clinics/{id}/providers: answered from a covering index.
PROVIDERS_SPEC = ResourceSpec(
    name="assignments",
    fields=frozenset({"providerId", "isPrimaryClinic"}),
    sorts={"providerId": (("providerId", 1),)},
    default_sort="providerId",
    list_budget="assignments",
)

CLINIC_FIELDS = {"_id": 1, "name": 1, "code": 1, "status": 1, "address.city": 1, "address.state": 1}


class AssignmentsService(CrudService):
    spec = SPEC
    schema = Assignment
    stamped_on_create = ("assignedAt",)  # an assignment starts when it is created

    def __init__(self, repository: Repository, clinics: Repository, **kwargs: Any) -> None:
        super().__init__(repository, **kwargs)
        self._clinics = clinics
        self._providers = _ProvidersView(repository, **kwargs)

    def derive(self, fields: dict[str, Any], current: Document | None) -> dict[str, Any]:
        derived: dict[str, Any] = {}
        if fields.get("isActive") and fields.get("isPrimaryClinic"):
            # Present only while active and primary: the sparse unique index allows one.
            provider = fields.get("providerId") or (current or {}).get("providerId")
            derived["primaryProviderId"] = provider
        if not fields.get("isActive") and fields.get("endedAt") is None:
            derived["endedAt"] = (current or {}).get("endedAt") or utcnow()
        return derived

    def derived_fields(self) -> tuple[str, ...]:
        return ("primaryProviderId",)

    async def prepare(
        self, principal: Principal, fields: dict[str, Any], parent: ObjectId | None
    ) -> dict[str, Any]:
        clinic_id = object_id(fields["clinicId"], "clinicId")
        clinic = await self._clinics.get(clinic_id, self.scope(principal), {"organizationId": 1})
        if clinic is None:
            raise ValidationFailed(
                f"clinic {clinic_id} does not exist",
                errors=[{"field": "clinicId", "message": "no such clinic"}],
            )
        return {
            **fields,
            "clinicId": clinic_id,
            "organizationId": clinic["organizationId"],
        }

    async def find(self, principal: Principal, query: ListQuery, route: str) -> Page:
        if "isActive" not in query.filter:
            # Both values as $in: MongoDB merges two index ranges instead of sorting in memory.
            query.filter["isActive"] = {"$in": [False, True]}
        return await super().find(principal, query, route)

    async def clinics_of_provider(
        self, principal: Principal, query: ListQuery, route: str, expand: bool
    ) -> Page:
        """A provider's assignments; `expand` adds each clinic with ONE `$in` lookup."""
        page = await self.find(principal, query, route)
        if expand and page.data:
            ids = list({doc["clinicId"] for doc in page.data if "clinicId" in doc})
            clinics = await self._clinics.by_ids(ids, self.scope(principal), CLINIC_FIELDS)
            for doc in page.data:
                clinic = clinics.get(doc["clinicId"]) if "clinicId" in doc else None
                doc["clinic"] = None if clinic is None else {"id": clinic.pop("_id"), **clinic}
        return page

    async def providers_of_clinic(
        self, principal: Principal, clinic_id: ObjectId, query: ListQuery, route: str
    ) -> Page:
        """Active providers of a clinic, answered from a covering index."""
        principal.require(Action.READ)
        if await self._clinics.get(clinic_id, self.scope(principal), {"_id": 1}) is None:
            raise NotFound(f"clinic {clinic_id} was not found")
        conditions = {"clinicId": clinic_id, "isActive": True, **self.scope(principal)}
        page = await self._providers.page(conditions, query, route)
        return await self.counted(page, conditions, query)


class _ProvidersView(CrudService):
    spec = PROVIDERS_SPEC
    schema = Assignment
