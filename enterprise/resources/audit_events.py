"""GET /api/v1/audit-events: the audit trail, newest first, in keyset pages; never cached.

Filters: `resource`, `id`, `actor` (a key id), `since` (ISO 8601 with an offset). Admin keys
only; an organization's admin sees its organization's records (schema: `AuditEventPage`).
"""

from __future__ import annotations

from falcon.asgi import Request, Response

from enterprise.openapi import Document, ListOf, Operation
from enterprise.resources.base import Limits, list_query, send_page
from enterprise.schemas import AuditEvent
from enterprise.services.audit import AuditEventsService


class AuditEvents:
    budget_class = "lists"

    def __init__(self, service: AuditEventsService, limits: Limits) -> None:
        self._service = service
        self._limits = limits
        document = Document("AuditEventDocument", AuditEvent, service.spec)
        self.openapi = {
            "get": Operation(
                "The audit trail, newest first (admin keys; organization-scoped)",
                "audit",
                response=ListOf(document),
                list_spec=service.spec,
                max_limit=limits.max_limit,
            )
        }

    async def on_get(self, req: Request, resp: Response) -> None:
        query = list_query(req, self._service.spec, self._limits)
        send_page(req, resp, await self._service.find(req.context.principal, query, req.path))
        resp.set_header("Cache-Control", "no-store")


def routes(service: AuditEventsService, limits: Limits) -> list[tuple[str, object]]:
    return [("/api/v1/audit-events", AuditEvents(service, limits))]
