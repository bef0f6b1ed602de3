"""assignments and assignments/{assignment_id}."""

from __future__ import annotations

from enterprise.resources.base import Collection, Item, Limits
from enterprise.services.assignments import AssignmentsService


def routes(
    service: AssignmentsService, limits: Limits, *, item_ttl: float, list_ttl: float
) -> list[tuple[str, object]]:
    return [
        ("/api/v1/assignments", Collection(service, limits, ttl=list_ttl)),
        (
            "/api/v1/assignments/{assignment_id}",
            Item(service, limits, ttl=item_ttl, param="assignment_id"),
        ),
    ]
