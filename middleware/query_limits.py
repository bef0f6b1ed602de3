"""Bounds on the query string, checked before authentication and routing.

Every parameter is whitelisted per route further in, but a request with a megabyte of query
or thousands of parameters should cost nothing and echo nothing back: 414 for an oversized
query string, 400 for too many parameters. (Far larger request lines never reach the app:
the ASGI server refuses them itself.)
"""

from __future__ import annotations

import falcon
from falcon.asgi import Request, Response


class QueryLimitMiddleware:
    """Args:
    max_bytes: longest query string accepted (after `?`, still percent-encoded).
    max_params: most `name=value` items accepted.
    """

    def __init__(self, *, max_bytes: int, max_params: int) -> None:
        self._max_bytes = max_bytes
        self._max_params = max_params

    async def process_request(self, req: Request, resp: Response) -> None:
        query = req.query_string
        if len(query) > self._max_bytes:
            raise falcon.HTTPUriTooLong(
                title="URI Too Long",
                description=f"the query string exceeds {self._max_bytes} bytes",
            )
        if query.count("&") >= self._max_params:
            raise falcon.HTTPBadRequest(
                title="Bad Request",
                description=f"more than {self._max_params} query parameters",
            )
