"""Per-route deadlines: cancel work that overruns and answer 504 instead.

A client that gave up should not keep a worker and a MongoDB operation busy. The inner app
runs under ``asyncio.timeout``, which cancels it at the deadline, and optionally under a
driver scope (the app passes ``pymongo.timeout``) so MongoDB is given ``maxTimeMS`` for what
is left of the budget and abandons the server-side operation too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from typing import Any

import orjson

from enterprise.context import current_timings, deadline_var, driver_deadline_var
from middleware.request_context import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

DEADLINE_PROBLEM_TYPE = "https://enterprise.example/problems/deadline-exceeded"


def _problem(timeout: float, path: str, problem_type: str) -> bytes:
    return orjson.dumps(
        {
            "type": problem_type,
            "title": "Gateway Timeout",
            "status": 504,
            "detail": f"the request did not finish within its {timeout:g} s deadline",
            "instance": path,
        }
    )


class DeadlineMiddleware:
    """Pure ASGI wrapper that enforces ``timeout_for(method, path)`` seconds per request.

    Args:
        app: The inner ASGI app.
        timeout_for: Returns the deadline in seconds for a method and path. A non-finite
            value means "no deadline".
        scope_factory: Optional context manager factory entered with the driver's share of
            the timeout around the inner app, e.g. ``pymongo.timeout`` so driver operations
            inherit the budget.
        driver_share: The driver's share of a timeout (all of it when not given); also what
            `driver_deadline()` tells the code that bounds database calls itself.
        problem_type: The ``type`` URI of the 504 problem document.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        timeout_for: Callable[[str, str], float],
        scope_factory: Callable[[float], contextlib.AbstractContextManager[Any]] | None = None,
        driver_share: Callable[[float], float] | None = None,
        problem_type: str = DEADLINE_PROBLEM_TYPE,
    ) -> None:
        self.app = app
        self.timeout_for = timeout_for
        self.scope_factory = scope_factory
        self.driver_share = driver_share
        self.problem_type = problem_type

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        path: str = scope.get("path", "")
        timeout = self.timeout_for(scope.get("method", "GET"), path)
        if not math.isfinite(timeout):
            await self.app(scope, receive, send)
            return

        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                # Set before awaiting: if the deadline fires mid-send, the client may already
                # have the status line, so a second response must not be attempted.
                started = True
            await send(message)

        loop = asyncio.get_running_loop()
        now = loop.time()
        share = self.driver_share(timeout) if self.driver_share is not None else timeout
        token = deadline_var.set(now + timeout)
        driver_token = driver_deadline_var.set(now + share)
        timer = asyncio.timeout(timeout)
        driver_scope = self.scope_factory(share) if self.scope_factory else contextlib.nullcontext()
        try:
            async with timer:
                with driver_scope:
                    await self.app(scope, receive, send_tracking)
        except TimeoutError:
            if not timer.expired():
                raise  # raised by the inner app itself, not our deadline
            await self._on_expired(timeout, path, started, send)
        finally:
            deadline_var.reset(token)
            driver_deadline_var.reset(driver_token)

    async def _on_expired(self, seconds: float, path: str, started: bool, send: Send) -> None:
        timings = current_timings()
        if timings is not None and timings.unfinished is not None:
            timings.unfinished(504)  # the cancelled app recorded nothing: record it now
            timings.unfinished = None
        if started:
            # The status line is gone; the only honest thing left is to stop. Raising would
            # make the server log a second, misleading error for the same request.
            logger.warning(
                "deadline exceeded after response start: path=%s timeout=%gs", path, seconds
            )
            return
        logger.warning("deadline exceeded: path=%s timeout=%gs", path, seconds)
        body = _problem(seconds, path, self.problem_type)
        await send(
            {
                "type": "http.response.start",
                "status": 504,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode("ascii")),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})
