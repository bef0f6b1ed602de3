"""providers/{provider_id}/clinics (?expand=clinic) and clinics/{clinic_id}/providers."""

from __future__ import annotations

from typing import Any

from falcon.asgi import Request, Response

from enterprise.errors import InvalidInput
from enterprise.openapi import Document, ListOf, Operation, Parameter
from enterprise.querying import ListQuery, object_id
from enterprise.resources.base import CachePolicy, Limits, list_query, send_page
from enterprise.schemas import PROVIDER_ID, Assignment, provider_id_of
from enterprise.services.assignments import PROVIDERS_SPEC, SPEC, AssignmentsService

# `?expand=clinic` adds each assignment's clinic (or null when it is gone).
CLINIC = {
    "anyOf": [
        {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "code": {"type": "string"},
                "status": {"type": "string"},
                "address": {"type": "object"},
            },
            "required": ["id"],
        },
        {"type": "null"},
    ]
}


class ProviderClinics:
    budget_class = "assignments"
    cache_kind = "lists"

    def __init__(self, service: AssignmentsService, limits: Limits, *, ttl: float) -> None:
        self._service = service
        self._limits = limits
        self._ttl = ttl
        document = Document("ProviderAssignmentDocument", Assignment, SPEC, {"clinic": CLINIC})
        self.openapi = {
            "get": Operation(
                "A provider's assignments (`?expand=clinic` adds each clinic)",
                "providers",
                response=ListOf(document),
                list_spec=SPEC,
                max_limit=limits.max_limit,
                conditional_read=True,
                query=(Parameter("expand", {"type": "string", "enum": ["clinic"]}),),
                path={"provider_id": PROVIDER_ID},
            )
        }

    def cache_policy(self, req: Request, params: dict[str, Any]) -> CachePolicy | None:
        return ["assignments", "clinics"], self._ttl, True

    def check_request(self, req: Request, params: dict[str, Any]) -> None:
        self._service.check_cursor(self._query(req, params["provider_id"]))

    def _query(self, req: Request, provider_id: str) -> ListQuery:
        if req.get_param("expand") not in (None, "clinic"):
            raise InvalidInput("expand must be `clinic`")
        return list_query(
            req,
            SPEC,
            self._limits,
            fixed={"providerId": provider_id_of(provider_id)},
            extra_params=frozenset({"expand"}),
        )

    async def on_get(self, req: Request, resp: Response, provider_id: str) -> None:
        query = self._query(req, provider_id)
        expand = req.get_param("expand")
        page = await self._service.clinics_of_provider(
            req.context.principal, query, req.path, expand=expand == "clinic"
        )
        send_page(req, resp, page)


class ClinicProviders:
    budget_class = "assignments"
    cache_kind = "lists"

    def __init__(self, service: AssignmentsService, limits: Limits, *, ttl: float) -> None:
        self._service = service
        self._limits = limits
        self._ttl = ttl
        document = Document("ClinicProviderDocument", Assignment, PROVIDERS_SPEC)
        self.openapi = {
            "get": Operation(
                "The active providers of a clinic",
                "providers",
                response=ListOf(document),
                list_spec=PROVIDERS_SPEC,
                max_limit=limits.max_limit,
                conditional_read=True,
            )
        }

    def cache_policy(self, req: Request, params: dict[str, Any]) -> CachePolicy | None:
        return ["assignments"], self._ttl, True

    def check_request(self, req: Request, params: dict[str, Any]) -> None:
        object_id(params["clinic_id"], "clinic_id")
        self._service.check_cursor(list_query(req, PROVIDERS_SPEC, self._limits))

    async def on_get(self, req: Request, resp: Response, clinic_id: str) -> None:
        query = list_query(req, PROVIDERS_SPEC, self._limits)
        page = await self._service.providers_of_clinic(
            req.context.principal, object_id(clinic_id, "clinic_id"), query, req.path
        )
        send_page(req, resp, page)


def routes(
    service: AssignmentsService, limits: Limits, *, list_ttl: float
) -> list[tuple[str, object]]:
    return [
        ("/api/v1/providers/{provider_id}/clinics", ProviderClinics(service, limits, ttl=list_ttl)),
        ("/api/v1/clinics/{clinic_id}/providers", ClinicProviders(service, limits, ttl=list_ttl)),
    ]
