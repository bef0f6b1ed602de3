"""/openapi.json: the OpenAPI 3.1 document, generated once by the app factory."""

from __future__ import annotations

from falcon.asgi import Request, Response

from enterprise.openapi import Operation, Rendered
from enterprise.querying import reject_unknown


class Specification:
    """Serves the rendered document with its ETag (a matching If-None-Match gets a 304)."""

    budget_class = "default"
    openapi = {
        "get": Operation(
            "This document: OpenAPI 3.1, generated from the route table and the msgspec schemas",
            "meta",
            response={"type": "object", "required": ["openapi", "info", "paths"]},
            conditional_read=True,
        )
    }

    def __init__(self) -> None:
        self._rendered: Rendered | None = None

    def publish(self, rendered: Rendered) -> None:
        self._rendered = rendered

    async def on_get(self, req: Request, resp: Response) -> None:
        reject_unknown(req.params, frozenset())
        assert self._rendered is not None, "the app factory publishes the document"
        resp.data = self._rendered.body
        resp.etag = self._rendered.etag
