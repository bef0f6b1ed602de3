"""The hot path: cache hits and their 304s answered before Falcon builds a request.

This wrapper is the request-context wrapper (request id, timings, ``Server-Timing``) with one
more step: before running the app it asks ``find(scope)`` whether the request is a GET whose
whole answer is already known in this process, with no await: the key's principal cached,
the route seen before, its generations under the lease and its entry in the in-process tier.
The app supplies ``find``, so it decides what a hit needs (authentication, tenant-scoped keys,
freshness across workers); this module only speaks HTTP:

* ``If-None-Match`` against the entry's validator (weak comparison, coding suffixes): 304;
* otherwise the stored form of the coding the client prefers (br, gzip, identity), with that
  form's own ETag, ``Vary: Accept-Encoding`` and an exact ``Content-Length``;
* ``X-Cache``, ``Cache-Status`` (RFC 9211), ``X-Request-Id`` and ``Server-Timing`` as on
  every response, then ``record(hit, status, ms, request_id, timings)`` (budgets, metrics,
  access log).

Anything else (a miss, a HEAD, an unknown key, Redis needed, with ``defer_origin`` a request
with an ``Origin``) runs the app as before, in the same wrapper: one wrapper, not two. It is
the outermost layer, so a hot answer passes no other: it counts requests in flight itself
(``track``), and adds what the layers inside it add to every answer (``closing``: security
headers, CORS' ``Vary``) once per stored representation.

``before_hit`` (optional) is asked before a hit is answered here, for a check that must also
cover hits (a rate limit): None sends the request through the app, which applies the same
check itself. It answers in place when it can and returns a coroutine only when it must wait
(most hits then pay for no await).

Refresh ahead: when ``find`` marks a hit for refresh (past its refresh point, or stale), the
same request is replayed through the app in the background with ``REFRESH`` in its scope, at
most one per key at a time in this worker; readers keep being served the entry meanwhile. It
is asked for as soon as the hit is found, before anything awaits: a hit that found the old
entry and asked only after its answer was sent could come after a refresh had ended, and
start a second one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, NamedTuple

from enterprise.context import RequestTimings
from middleware.compression import coded_etag, negotiated
from middleware.conditional import REVALIDATE, if_none_match
from middleware.request_context import (
    ASGIApp,
    Message,
    Receive,
    RequestContextMiddleware,
    Scope,
    Send,
    incoming_request_id,
)
from middleware.response_cache import REFRESH, cache_status

logger = logging.getLogger(__name__)

Headers = list[tuple[bytes, bytes]]
STATIC = "static"
_DROPPED_ON_REFRESH = frozenset(
    {b"if-none-match", b"if-modified-since", b"accept-encoding", b"x-request-id"}
)


class Hit(NamedTuple):
    """What ``find`` returns for a request the hot path may answer."""

    entry: Any  # body, forms, etag, content_type, headers, stored_at, ttl
    # "hit" (fresh), "stale" (inside the stale-while-revalidate window), or STATIC: a fixed
    # answer of the app's own (/health/live), not the cache's: no X-Cache, no Cache-Status.
    state: str
    refresh_key: str | None  # refresh this entry in the background (None: no need)
    context: Any  # the app's own, handed back to ``record``
    now: float  # the cache's clock when it was found (for Cache-Status' ttl)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class HotPathMiddleware(RequestContextMiddleware):
    """Pure ASGI wrapper: request context for every request, and hits answered in place.

    Args:
        app: The inner ASGI app (deadline, compression, Falcon).
        find: ``scope -> Hit | None``, with no I/O.
        record: Called once per answered hit with ``(hit, status, ms, request_id, timings)``,
            before the response is sent. The request's context variables are not set for it:
            what it needs is handed over.
        before_hit: Optional ``(scope, hit) -> headers | None``, or a coroutine of that when
            it must wait, asked before a hit is answered here, for a check that must cover
            hits too (the rate limit): headers to add to the answer, or None to let the app
            answer (it applies the check itself).
        track: Optional; called with +1 when an HTTP request starts and -1 when it ends,
            however it ends (requests in flight).
        closing: Optional ``(headers, authenticated) -> headers to add``: what the wrappers
            inside this one add to every answer (security headers, CORS' ``Vary``), for the
            answers given here. Asked once per stored representation, not per request.
        defer_origin: Requests with an ``Origin`` header go through the app (CORS answers
            them, inside this wrapper).
        max_refreshes: Background refreshes running at once, at most. Past it a refresh is
            not started (the entry goes on answering; a later hit asks again): when many
            entries come due together, their recomputation must not crowd out the requests.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        find: Callable[[Scope], Hit | None],
        record: Callable[[Hit, int, float, str, RequestTimings], None],
        before_hit: Callable[[Scope, Hit], Headers | None | Coroutine[None, None, Headers | None]]
        | None = None,
        track: Callable[[int], None] | None = None,
        closing: Callable[[Headers, bool], Headers] | None = None,
        defer_origin: bool = False,
        max_refreshes: int = 4,
    ) -> None:
        super().__init__(app)
        self._find = find
        self._record = record
        self._before_hit = before_hit
        self._track = track
        self._closing = closing
        self._defer_origin = defer_origin
        self._max_refreshes = max_refreshes
        # A 304's headers are the same few names every time: what `closing` adds is too.
        self._closing_304 = (
            closing([(b"etag", b""), (b"cache-control", b""), (b"vary", b"")], True)
            if closing is not None
            else []
        )
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self.answered = 0  # requests answered here, without the app
        self.refreshes = 0  # background refreshes started

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._track is None:
            await self._serve(scope, receive, send)
            return
        self._track(1)
        try:
            await self._serve(scope, receive, send)
        finally:
            self._track(-1)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        timings = RequestTimings()
        request_id = incoming_request_id(scope)
        hit = self._find(scope) if scope["method"] == "GET" else None
        if hit is not None and self._defer_origin and _header(scope, b"origin") is not None:
            hit = None
        if hit is not None and hit.refresh_key is not None:
            # Asked with no await since `find`: a hit that found the entry before a refresh
            # ended must not start another once it has (a rate limit decided in Redis and
            # the answer's sends await, and a refresh may end meanwhile).
            self.refresh(scope, hit.refresh_key)
        extra: Headers | None = []
        if hit is not None and self._before_hit is not None:
            checked = self._before_hit(scope, hit)
            extra = checked if checked is None or isinstance(checked, list) else await checked
        if hit is not None and extra is not None:
            self.answered += 1
            await self._answer(scope, send, hit, request_id, timings, extra)
            return
        await self.call_app(scope, receive, send, request_id, timings)

    async def _answer(
        self,
        scope: Scope,
        send: Send,
        hit: Hit,
        request_id: str,
        timings: RequestTimings,
        extra: Headers,
    ) -> None:
        entry = hit.entry
        etag: str | None = entry.etag
        matched = None
        if etag is not None:
            condition = _header(scope, b"if-none-match")
            if condition is not None:
                matched = if_none_match(condition.decode("latin-1"), etag)
        body = b""
        if matched is not None:
            status = 304
            headers: Headers = [
                (b"etag", matched.encode("latin-1")),
                (b"cache-control", REVALIDATE.encode()),
                (b"vary", b"Accept-Encoding"),
                *self._closing_304,
            ]
        else:
            status = 200
            coding = negotiated(_header(scope, b"accept-encoding")) if entry.forms else None
            body, headers = self._representation(entry, coding, hit.state != STATIC)
        headers.extend(extra)
        elapsed_ms = (time.perf_counter() - timings.started) * 1000.0
        if hit.state != STATIC:
            headers.append((b"x-cache", hit.state.encode()))
            headers.append((b"cache-status", cache_status(hit.state, entry, hit.now).encode()))
            timings.add("cache", elapsed_ms)
        self._record(hit, status, elapsed_ms, request_id, timings)
        headers.append((b"x-request-id", request_id.encode("ascii")))
        headers.append((b"server-timing", timings.server_timing().encode("ascii")))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def refresh(self, scope: Scope, key: str) -> None:
        """Replay the GET of `scope` in the background to recompute the entry `key`, unless
        this worker already is, or already runs `max_refreshes` refreshes."""
        if key in self._refreshing or len(self._refreshing) >= self._max_refreshes:
            return
        headers = [(k, v) for k, v in scope["headers"] if k not in _DROPPED_ON_REFRESH]
        replay = {**scope, "headers": headers, REFRESH: True}
        self.refreshes += 1
        task = asyncio.get_running_loop().create_task(self._refresh(replay, key))
        self._refreshing[key] = task
        task.add_done_callback(lambda _: self._refreshing.pop(key, None))

    async def _refresh(self, scope: Scope, key: str) -> None:
        """Replay the request through the app: the response cache stores the new entry.
        A failure keeps the old entry (and is logged): readers are served it meanwhile."""
        status = 0
        requested = False

        async def receive() -> Message:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        try:
            await self.call_app(
                scope, receive, send, incoming_request_id({"headers": ()}), RequestTimings()
            )
        except Exception:
            logger.exception("cache: background refresh of %s failed", scope.get("path"))
            return
        if status >= 500:
            logger.warning(
                "cache: background refresh of %s answered %d; the stored entry stays",
                scope.get("path"),
                status,
            )

    async def aclose(self) -> None:
        """Wait for the refreshes in flight (the app's shutdown closes their clients)."""
        if self._refreshing:
            await asyncio.gather(*self._refreshing.values(), return_exceptions=True)

    def _representation(
        self, entry: Any, coding: str | None, authenticated: bool
    ) -> tuple[bytes, Headers]:
        """The body and the fixed headers of `entry` in `coding` (None: identity), made once
        per entry and coding and kept on the entry (`prepared`). A fixed answer's headers
        must set Cache-Control (as /health/live does): they are made for any request."""
        prepared = entry.prepared.get(coding)
        if prepared is None:
            form = entry.forms.get(coding) if coding is not None else None
            body = form if form is not None else entry.body
            headers: Headers = [
                (b"content-type", entry.content_type.encode("latin-1")),
                (b"content-length", str(len(body)).encode("ascii")),
                (b"vary", b"Accept-Encoding"),
            ]
            etag = entry.etag
            if form is not None:
                assert coding is not None
                headers.append((b"content-encoding", coding.encode("ascii")))
                etag = coded_etag(etag, coding) if etag is not None else None
            if etag is not None:
                headers.append((b"etag", etag.encode("latin-1")))
                headers.append((b"cache-control", REVALIDATE.encode()))
            headers.extend(
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in entry.headers
            )
            if self._closing is not None:
                headers.extend(self._closing(headers, authenticated))
            prepared = entry.prepared[coding] = (body, headers)
        body, headers = prepared
        return body, list(headers)
