"""reports/organizations/{organization_id}/summary."""

from __future__ import annotations

from typing import Any

from falcon.asgi import Request, Response

from enterprise import generations
from enterprise.openapi import Operation
from enterprise.querying import object_id, reject_unknown
from enterprise.resources.base import CachePolicy, dumps
from enterprise.services.reports import ReportsService


class OrganizationSummary:
    budget_class = "reports"
    cache_kind = "reports"
    openapi = {
        "get": Operation(
            "An organization's clinics by status and its assignments",
            "reports",
            response={"type": "object", "required": ["organizationId", "name", "clinics"]},
            conditional_read=True,
        )
    }

    def __init__(self, service: ReportsService, *, ttl: float) -> None:
        self._service = service
        self._ttl = ttl

    def cache_policy(self, req: Request, params: dict[str, Any]) -> CachePolicy | None:
        organization = params["organization_id"]
        names = [
            generations.tenant("clinics", organization),
            generations.tenant("assignments", organization),
        ]
        return names, self._ttl, True

    def check_request(self, req: Request, params: dict[str, Any]) -> None:
        reject_unknown(req.params, frozenset())
        object_id(params["organization_id"], "organization_id")

    async def on_get(self, req: Request, resp: Response, organization_id: str) -> None:
        reject_unknown(req.params, frozenset())
        summary = await self._service.organization_summary(
            req.context.principal, object_id(organization_id, "organization_id")
        )
        resp.data = dumps(summary)
