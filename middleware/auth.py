"""Bearer-key authentication. The app injects how a key becomes a principal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import falcon
from falcon.asgi import Request, Response


class AuthMiddleware:
    """Puts the authenticated principal in `req.context.principal`.

    Args:
        authenticate: async callable from the raw bearer key to a principal, or None.
        public_prefixes: paths served without a key (health, the dashboard page); a key
            sent there anyway is checked, so such a resource may show a key's holder more.
    """

    def __init__(
        self,
        authenticate: Callable[[str], Awaitable[Any | None]],
        *,
        public_prefixes: tuple[str, ...] = ("/health/",),
    ) -> None:
        self._authenticate = authenticate
        self._public = public_prefixes

    async def process_request(self, req: Request, resp: Response) -> None:
        req.context.principal = None
        if req.method == "OPTIONS":
            return
        authorization = req.get_header("Authorization")
        if authorization is None and req.path.startswith(self._public):
            return
        scheme, _, key = (authorization or "").partition(" ")
        key = key.strip()
        if not key or scheme.lower() != "bearer":
            raise falcon.HTTPUnauthorized(
                title="Unauthorized",
                description="send an API key as `Authorization: Bearer <key>`",
                challenges=["Bearer"],
            )
        principal = await self._authenticate(key)
        if principal is None:
            raise falcon.HTTPUnauthorized(
                title="Unauthorized",
                description="the API key is unknown or revoked",
                challenges=['Bearer error="invalid_token"'],
            )
        req.context.principal = principal
