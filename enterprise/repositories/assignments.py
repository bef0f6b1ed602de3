"""assignments collection, including the organization summary aggregations."""

from __future__ import annotations

import asyncio
from typing import Any

from bson import ObjectId

from enterprise.repositories.base import Repository
from indexes import UNIQUE_FIELDS


class AssignmentsRepository(Repository):
    collection_name = "assignments"
    unique_fields = UNIQUE_FIELDS["assignments"]

    async def summary(self, organization_id: ObjectId) -> dict[str, Any]:
        """Active, primary and distinct-provider counts, as concurrent $match/$group pipelines.

        Only stages both MongoDB and FerretDB implement ($match, $group, $count); one
        $facet would do on MongoDB but FerretDB lacks it, and three small pipelines in
        parallel cost about one round trip anyway.
        """
        active = {"$match": {"organizationId": organization_id, "isActive": True}}
        by_primary, providers = await asyncio.gather(
            self.aggregate([active, {"$group": {"_id": "$isPrimaryClinic", "n": {"$sum": 1}}}]),
            self.aggregate([active, {"$group": {"_id": "$providerId"}}, {"$count": "n"}]),
        )
        counts = {row["_id"]: row["n"] for row in by_primary}
        return {
            "activeAssignments": sum(counts.values()),
            "primaryAssignments": counts.get(True, 0),
            "distinctProviders": providers[0]["n"] if providers else 0,
        }


class ClinicStatsRepository(Repository):
    """Read-only aggregations over clinics for reports."""

    collection_name = "clinics"

    async def by_status(self, organization_id: ObjectId) -> dict[str, int]:
        rows = await self.aggregate(
            [
                {"$match": {"organizationId": organization_id}},
                {"$group": {"_id": "$status", "n": {"$sum": 1}}},
            ]
        )
        return {str(row["_id"]): row["n"] for row in rows}
