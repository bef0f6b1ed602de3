"""Security response headers on every answer, as a pure ASGI wrapper (OWASP REST Security).

* `X-Content-Type-Options: nosniff` everywhere: a browser never guesses a type.
* `Content-Security-Policy: default-src 'none'; frame-ancestors 'none'` where the app set no
  policy of its own: JSON runs nothing and is framed by nobody. The dashboard page sets its own.
* `Cache-Control: no-store` on answers to authenticated requests that chose no caching
  policy (writes, SRE figures). Answers that did choose keep theirs: validated reads say
  `private, max-age=0, must-revalidate`, so clients keep revalidating with their ETags.
* `Strict-Transport-Security` when configured (only behind HTTPS; off by default).

Outside the Falcon app, so 504s of the deadline and CORS preflights carry them too; the hot
path (middleware/hot_path.py), outside this wrapper, adds the same headers to what it answers
itself, from `added`. Per response: one scan of the request's and the response's header
names, and constant tuples appended.
"""

from __future__ import annotations

from middleware.request_context import ASGIApp, Message, Receive, Scope, Send

Headers = list[tuple[bytes, bytes]]

API_POLICY = b"default-src 'none'; frame-ancestors 'none'"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, hsts_seconds: int = 0) -> None:
        self.app = app
        self._always = [(b"x-content-type-options", b"nosniff")]
        if hsts_seconds > 0:
            self._always.append(
                (b"strict-transport-security", b"max-age=%d; includeSubDomains" % hsts_seconds)
            )

    def added(self, headers: Headers, authenticated: bool) -> Headers:
        """The headers to add to an answer with `headers`, to a request that carried a key
        (`authenticated`) or not. The hot path asks once per stored answer, not per request."""
        has_policy = has_cache_control = False
        for name, _ in headers:
            if name == b"content-security-policy":
                has_policy = True
            elif name == b"cache-control":
                has_cache_control = True
        extra = list(self._always)
        if not has_policy:
            extra.append((b"content-security-policy", API_POLICY))
        if authenticated and not has_cache_control:
            extra.append((b"cache-control", b"no-store"))
        return extra

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authenticated = False
        for name, _ in scope["headers"]:
            if name == b"authorization":
                authenticated = True
                break

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                headers.extend(self.added(headers, authenticated))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
