"""organizations/{id}/clinics, clinics, clinics/search and clinics/{clinic_id}."""

from __future__ import annotations

from typing import Any

from falcon.asgi import Request, Response

from enterprise.openapi import ListOf, Operation
from enterprise.resources.base import (
    CachePolicy,
    Collection,
    Item,
    Limits,
    document_of,
    list_query,
    send_page,
)
from enterprise.services.clinics import SEARCH_SPEC, ClinicsService


class Search:
    """Case-insensitive name prefix (`q`) with status/state/city filters, by name."""

    budget_class = "search"
    cache_kind = "lists"

    def __init__(self, service: ClinicsService, limits: Limits, *, ttl: float) -> None:
        self._service = service
        self._limits = limits
        self._ttl = ttl
        self.openapi = {
            "get": Operation(
                "Search clinics by name prefix (`q`), by name",
                "clinics",
                response=ListOf(document_of(service)),
                list_spec=SEARCH_SPEC,
                max_limit=limits.max_limit,
                conditional_read=True,
            )
        }

    def cache_policy(self, req: Request, params: dict[str, Any]) -> CachePolicy | None:
        return ["clinics"], self._ttl, True

    def check_request(self, req: Request, params: dict[str, Any]) -> None:
        self._service.check_cursor(list_query(req, SEARCH_SPEC, self._limits))

    async def on_get(self, req: Request, resp: Response) -> None:
        query = list_query(req, SEARCH_SPEC, self._limits)
        send_page(req, resp, await self._service.find(req.context.principal, query, req.path))


def routes(
    service: ClinicsService, limits: Limits, *, item_ttl: float, list_ttl: float
) -> list[tuple[str, object]]:
    return [
        (
            "/api/v1/organizations/{organization_id}/clinics",
            Collection(service, limits, ttl=list_ttl, parent="organization_id"),
        ),
        ("/api/v1/clinics", Collection(service, limits, ttl=list_ttl, creatable=False)),
        ("/api/v1/clinics/search", Search(service, limits, ttl=list_ttl)),
        ("/api/v1/clinics/{clinic_id}", Item(service, limits, ttl=item_ttl, param="clinic_id")),
    ]
