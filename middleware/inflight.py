"""Requests in flight, counted where nothing can skip the decrement.

A pure ASGI wrapper rather than Falcon's ``process_request``/``process_response``: a request
cancelled by its deadline never reaches ``process_response``, and would be counted forever.
"""

from __future__ import annotations

from collections.abc import Callable

from middleware.request_context import ASGIApp, Receive, Scope, Send


class InFlightMiddleware:
    """Calls ``track(+1)`` when an HTTP request starts and ``track(-1)`` when it ends, however
    it ends. Lifespan and websocket scopes pass through uncounted.
    """

    def __init__(self, app: ASGIApp, track: Callable[[int], None]) -> None:
        self.app = app
        self._track = track

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self._track(1)
        try:
            await self.app(scope, receive, send)
        finally:
            self._track(-1)
