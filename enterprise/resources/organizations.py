"""organizations and organizations/{organization_id}."""

from __future__ import annotations

from enterprise.resources.base import Collection, Item, Limits
from enterprise.services.organizations import OrganizationsService


def routes(
    service: OrganizationsService, limits: Limits, *, item_ttl: float, list_ttl: float
) -> list[tuple[str, object]]:
    return [
        ("/api/v1/organizations", Collection(service, limits, ttl=list_ttl)),
        (
            "/api/v1/organizations/{organization_id}",
            Item(service, limits, ttl=item_ttl, param="organization_id"),
        ),
    ]
