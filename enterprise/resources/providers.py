"""providers/{provider_id}/clinics (?expand=clinic) and clinics/{clinic_id}/providers."""

from __future__ import annotations

from typing import Any

from falcon.asgi import Request, Response

from enterprise.errors import InvalidInput
from enterprise.querying import object_id
from enterprise.resources.base import CachePolicy, Limits, list_query, send_page
from enterprise.services.assignments import PROVIDERS_SPEC, SPEC, AssignmentsService


class ProviderClinics:
    budget_class = "assignments"
    cache_kind = "lists"

    def __init__(self, service: AssignmentsService, limits: Limits, *, ttl: float) -> None:
        self._service = service
        self._limits = limits
        self._ttl = ttl

    def cache_policy(self, req: Request, params: dict[str, Any]) -> CachePolicy | None:
        return ["assignments", "clinics"], self._ttl, True

    async def on_get(self, req: Request, resp: Response, provider_id: str) -> None:
        expand = req.get_param("expand")
        if expand not in (None, "clinic"):
            raise InvalidInput("expand must be `clinic`")
        query = list_query(
            req,
            SPEC,
            self._limits,
            fixed={"providerId": provider_id},
            extra_params=frozenset({"expand"}),
        )
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

    def cache_policy(self, req: Request, params: dict[str, Any]) -> CachePolicy | None:
        return ["assignments"], self._ttl, True

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
