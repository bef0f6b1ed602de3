"""CORS (Fetch standard, "CORS protocol") for an allow-list of origins, as a pure ASGI wrapper.

* A preflight (OPTIONS with `Origin` and `Access-Control-Request-Method`) is answered here,
  before the app: 204 with what is allowed when the origin, the method and every requested
  header are; 403 problem+json without any CORS field when not (the browser then refuses).
* Any other request from an allowed origin gets `Access-Control-Allow-Origin` with that very
  origin (`*` only when the list is `*` and credentials are off: never both) and the response
  fields a script may read (`Access-Control-Expose-Headers`).
* Every response gets `Vary: Origin`: whether it carries CORS fields depends on the origin.

Installed only when origins are configured, so without them it costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from middleware.request_context import ASGIApp, Message, Receive, Scope, Send

ALLOWED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
ALLOWED_HEADERS = ("authorization", "content-type", "if-match", "if-none-match", "x-request-id")
# What clients of this API read: validators, paging, counts, limits, request ids, timings.
EXPOSED_HEADERS = (
    "ETag",
    "Link",
    "Location",
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
    "X-Request-Id",
    "X-Count-Strategy",
    "X-Total-Count",
    "X-Cache",
    "Server-Timing",
)
_REFUSED_BODY = (
    b'{"type":"https://enterprise.example/problems/cors-preflight-refused",'
    b'"title":"Forbidden","status":403,'
    b'"detail":"this origin, method or header is not allowed cross-origin"}'
)


class CORSMiddleware:
    """Args:
    origins: exact origins (`https://app.example.com`), or `("*",)` for any.
    allow_credentials: send `Access-Control-Allow-Credentials: true` (never with `*`).
    max_age: seconds a browser may reuse a preflight's answer.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        origins: Iterable[str],
        allow_credentials: bool = False,
        max_age: int = 600,
    ) -> None:
        self.app = app
        self._origins = frozenset(origin.encode("latin-1") for origin in origins)
        self._any = b"*" in self._origins
        if self._any and allow_credentials:
            raise ValueError("a wildcard origin cannot be combined with credentials")
        self._credentials = allow_credentials
        self._simple = [(b"access-control-expose-headers", ", ".join(EXPOSED_HEADERS).encode())]
        if allow_credentials:
            self._simple.append((b"access-control-allow-credentials", b"true"))
        self._preflight = [
            (b"access-control-allow-methods", ", ".join(ALLOWED_METHODS).encode()),
            (b"access-control-allow-headers", ", ".join(ALLOWED_HEADERS).encode()),
            (b"access-control-max-age", str(max_age).encode()),
        ]
        if allow_credentials:
            self._preflight.append((b"access-control-allow-credentials", b"true"))

    def _allow_origin(self, origin: bytes) -> bytes | None:
        if origin in self._origins:
            return origin
        return b"*" if self._any else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = method = requested = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"access-control-request-method":
                method = value
            elif name == b"access-control-request-headers":
                requested = value
        if origin is not None and method is not None and scope["method"] == "OPTIONS":
            await self._answer_preflight(send, origin, method, requested)
            return
        allowed = self._allow_origin(origin) if origin is not None else None
        extra = [(b"vary", b"Origin")]
        if allowed is not None:
            extra.append((b"access-control-allow-origin", allowed))
            extra.extend(self._simple)

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _answer_preflight(
        self, send: Send, origin: bytes, method: bytes, requested: bytes | None
    ) -> None:
        allowed = self._allow_origin(origin)
        headers_ok = requested is None or all(
            part.strip().lower().decode("latin-1") in ALLOWED_HEADERS
            for part in requested.split(b",")
            if part.strip()
        )
        if allowed is None or method.decode("latin-1") not in ALLOWED_METHODS or not headers_ok:
            await _send(
                send,
                403,
                [
                    (b"content-type", b"application/problem+json"),
                    (b"cache-control", b"no-store"),
                    (b"vary", b"Origin"),
                ],
                _REFUSED_BODY,
            )
            return
        headers = [
            (b"access-control-allow-origin", allowed),
            *self._preflight,
            (b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
        ]
        await _send(send, 204, headers, b"")


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
