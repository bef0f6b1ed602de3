"""Organization summary report: small aggregations run concurrently."""

from __future__ import annotations

import asyncio
from typing import Any

from bson import ObjectId

from enterprise.auth import Action, Principal
from enterprise.errors import NotFound
from enterprise.repositories.assignments import AssignmentsRepository, ClinicStatsRepository
from enterprise.repositories.base import Repository


class ReportsService:
    def __init__(
        self,
        organizations: Repository,
        clinics: ClinicStatsRepository,
        assignments: AssignmentsRepository,
    ) -> None:
        self._organizations = organizations
        self._clinics = clinics
        self._assignments = assignments

    async def organization_summary(
        self, principal: Principal, organization_id: ObjectId
    ) -> dict[str, Any]:
        principal.require(Action.READ)
        if principal.tenant is not None and principal.tenant != organization_id:
            raise NotFound(f"organization {organization_id} was not found")
        organization, clinics, assignments = await asyncio.gather(
            self._organizations.get(organization_id, {}, {"name": 1}),
            self._clinics.by_status(organization_id),
            self._assignments.summary(organization_id),
        )
        if organization is None:
            raise NotFound(f"organization {organization_id} was not found")
        return {
            "organizationId": organization_id,
            "name": organization["name"],
            "clinics": {"total": sum(clinics.values()), "byStatus": clinics},
            **assignments,
        }
