"""Stop a streamed response when its client leaves.

ASGI servers turn `send` into a silent no-op once the client has disconnected (uvicorn's
does), so a streamed export would otherwise read its whole cursor for nobody. Once a
response streams (a body message with `more_body`), this wrapper watches `receive` for
`http.disconnect`; the next `send` then raises `ClientDisconnected`, which ends the
producer's iteration (Falcon closes the stream, the stream closes its cursor) and is caught
here, so the server logs no error for a client's normal departure.
"""

from __future__ import annotations

import asyncio
import logging

from middleware.request_context import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)


class ClientDisconnected(OSError):
    """The client left while its response was streaming."""


class DisconnectMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        left = asyncio.Event()
        watcher: asyncio.Task[None] | None = None

        async def watch() -> None:
            # The request is read by now (the response is streaming): what comes next is
            # the disconnect, whether the client leaves early or after the last byte.
            while (await receive())["type"] != "http.disconnect":
                pass
            left.set()

        async def watched_send(message: Message) -> None:
            nonlocal watcher
            if left.is_set():
                raise ClientDisconnected("the client disconnected during a streamed response")
            if watcher is None and message["type"] == "http.response.body":
                if message.get("more_body", False):
                    watcher = asyncio.create_task(watch())
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except ClientDisconnected:
            logger.info("%s %s: client left mid-stream; stream stopped", scope.get("method"),
                        scope.get("path"))  # fmt: skip
        finally:
            if watcher is not None:
                watcher.cancel()
