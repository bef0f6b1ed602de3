"""Request id and per-request timings: bound for each request, reported in headers.

This is the outermost wrapper. Everything below it (deadline, compression, the Falcon app,
services and repositories) runs in the same task, so the request id and timings it binds
(enterprise/context.py) are visible to all of them; it answers with ``x-request-id`` and
``server-timing``.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from enterprise.context import RequestTimings, request_id_var, timings_var

# The wrappers accept the Starlette/httpx shapes; the inner app is typed loosely because
# falcon.asgi.App declares dict scopes and sends, which no single precise alias satisfies too.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]

_REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")


class _RequestIds:
    """New request ids: 32 hex digits, a random per-process prefix and a counter. Unique
    like a uuid4 within any realistic fleet, without a getrandom call and a UUID object per
    request; a forked worker draws its own prefix."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count(int.from_bytes(os.urandom(4), "big"))

    def new(self) -> str:
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFFFFFFFFFF:016x}"


_new_request_id = _RequestIds().new


def incoming_request_id(scope: Scope) -> str:
    """The client's X-Request-Id when it is valid, else a new one."""
    for name, value in scope.get("headers", ()):
        if name == _REQUEST_ID_HEADER:
            # Only the first header counts; an invalid one is replaced, never echoed, so a
            # client cannot inject arbitrary text into our logs or response headers.
            if _VALID_REQUEST_ID.fullmatch(value):
                return bytes(value).decode("ascii")
            break
    return _new_request_id()


class RequestContextMiddleware:
    """Pure ASGI wrapper that sets the request id and timings and reports them in headers.

    Adds ``x-request-id`` (replacing any the inner app set) and ``server-timing`` (in addition
    to any the inner app set) to every HTTP response. Lifespan and websocket scopes pass
    through untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.call_app(scope, receive, send, incoming_request_id(scope), RequestTimings())

    async def call_app(
        self, scope: Scope, receive: Receive, send: Send, request_id: str, timings: RequestTimings
    ) -> None:
        """Run the inner app for one HTTP request with this id and these timings."""
        id_token = request_id_var.set(request_id)
        timings_token = timings_var.set(timings)

        async def send_with_context(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [  # ASGI response header names are lower-case
                    (name, value)
                    for name, value in message.get("headers", ())
                    if name != _REQUEST_ID_HEADER
                ]
                headers.append((_REQUEST_ID_HEADER, request_id.encode("ascii")))
                headers.append((b"server-timing", timings.server_timing().encode("ascii")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_context)
        finally:
            timings_var.reset(timings_token)
            request_id_var.reset(id_token)
