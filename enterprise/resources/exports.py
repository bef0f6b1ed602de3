"""organizations/{id}/clinics/export and organizations/{id}/assignments/export: NDJSON."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from falcon.asgi import Request, Response

from enterprise.openapi import Operation
from enterprise.querying import object_id, parse_fields, reject_unknown
from enterprise.repositories.base import Document
from enterprise.resources.base import dumps
from enterprise.services.exports import KINDS, ExportsService

NDJSON = "application/x-ndjson"
PARAMS = frozenset({"fields"})


class NdjsonStream:
    """One NDJSON chunk per batch. Falcon calls `close()` when it stops iterating, also when
    sending failed because the client left, so the cursor is closed with the response."""

    def __init__(self, batches: AsyncGenerator[list[Document], None]) -> None:
        self._batches = batches
        self._chunks = self._encode()

    def __aiter__(self) -> NdjsonStream:
        return self

    async def __anext__(self) -> bytes:
        return await self._chunks.__anext__()

    async def close(self) -> None:
        await self._chunks.aclose()
        await self._batches.aclose()

    async def _encode(self) -> AsyncGenerator[bytes, None]:
        async for batch in self._batches:
            yield b"".join([dumps(document) + b"\n" for document in batch])


class Export:
    """Never cached (no `cache_policy`): an export is read once, and may be large."""

    budget_class = "reports"

    def __init__(self, service: ExportsService, kind: str) -> None:
        self._service = service
        self._kind = kind
        self.openapi = {
            "get": Operation(
                f"Every one of an organization's {kind}, one JSON document per line",
                "exports",
                response={"type": "string"},
                media=NDJSON,
                fields_spec=KINDS[kind].spec,
            )
        }

    async def on_get(self, req: Request, resp: Response, organization_id: str) -> None:
        reject_unknown(req.params, PARAMS)
        fields = parse_fields(req.get_param("fields"), KINDS[self._kind].spec)
        batches = await self._service.open(
            req.context.principal, object_id(organization_id, "organization id"), self._kind, fields
        )
        resp.content_type = NDJSON
        resp.stream = NdjsonStream(batches)


def routes(service: ExportsService) -> list[tuple[str, object]]:
    return [
        (f"/api/v1/organizations/{{organization_id}}/{kind}/export", Export(service, kind))
        for kind in KINDS
    ]
