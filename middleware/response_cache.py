"""Response cache (cache-aside) for GET: hits short-circuit before the resource runs.

The app injects `describe(req, resource, params)`, which returns the request's cache target
(key with generations, TTL, list ETag) or None for uncacheable requests, and the cache store.
The resource's `cache_kind` attribute (organizations, lists, reports …) labels the counters.

* Single flight: one request per key computes, the others wait for it.
* Stale-while-revalidate: past its TTL an entry is still served (`X-Cache: stale`) while one
  request refreshes it: a background one when `refresh(scope, key)` is given, else the first
  request that found it stale. A background refresh (`REFRESH` in the scope, sent by the hot path,
  middleware/hot_path.py) skips the lookup and recomputes, unless another request already is.
* Stale-if-error: a leader whose computation answers 503 or 504 (MongoDB down, its breaker
  open, its deadline passed) serves the expired entry instead, up to the cache's
  `stale_if_error_seconds` past its TTL, marked `Cache-Status: ...; fwd=stale; fwd-status=503`.
* Stored forms: `encode(body)` makes the br and gzip forms once when an entry is stored; a
  hit (and the miss that stored it) sends the negotiated form with its own ETag, so the
  compression wrapper, which passes encoded bodies through, never compresses it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import falcon
from falcon.asgi import Request, Response

from enterprise.context import record_timing
from middleware.compression import coded_etag, negotiated
from middleware.conditional import REVALIDATE, not_modified, revalidation

logger = logging.getLogger(__name__)
STORED_HEADERS = ("Link", "X-Total-Count", "X-Count-Strategy")
REFRESH = "cache.refresh"  # scope key: this request recomputes its entry in the background
CACHE_NAME = "enterprise"  # the cache's name in Cache-Status (RFC 9211)
ERROR_STATUSES = frozenset({503, 504})


def cache_status(state: str, entry: Any, now: float, fwd_status: int | None = None) -> str:
    """The `Cache-Status` value (RFC 9211) of a response served from `entry`: a hit with
    its remaining freshness (negative when stale), or a stale entry served because the
    origin answered `fwd_status`."""
    ttl = int(entry.stored_at + entry.ttl - now)
    if fwd_status is not None:
        return f"{CACHE_NAME}; fwd=stale; fwd-status={fwd_status}; ttl={ttl}"
    return f"{CACHE_NAME}; hit; ttl={ttl}"


class ResponseCacheMiddleware:
    def __init__(
        self,
        cache: Any,
        describe: Callable[[Request, object, dict[str, Any]], Awaitable[Any | None]],
        *,
        encode: Callable[[bytes], dict[str, bytes]] | None = None,
        refresh: Callable[[Any, str], None] | None = None,
        wait_for_leader_s: float = 5.0,
    ) -> None:
        self._cache = cache
        self._describe = describe
        self._encode = encode
        self._refresh_later = refresh
        self._wait = wait_for_leader_s

    async def process_resource(
        self, req: Request, resp: Response, resource: object, params: dict[str, Any]
    ) -> None:
        if req.method not in ("GET", "HEAD") or resource is None or not self._cache.enabled:
            return
        target = await self._describe(req, resource, params)
        if target is None:
            return
        started = time.perf_counter()
        kind = getattr(resource, "cache_kind", "other")
        if req.scope.get(REFRESH):
            await self._refresh(req, resp, target)
            return
        # The in-process tier first, with no await: most hits end here. Redis found nothing?
        # Then a leader may have finished while we waited for it, leaving its entry in the
        # local tier: look there again, with no await from here to `lead`, so that one
        # request computes, not two.
        tier = "local"
        entry = self._cache.get_local(target.key)
        if entry is None:
            entry = await self._cache.get_remote(target.key)
            if entry is None:
                entry = self._cache.get_local(target.key)
            else:
                tier = "redis"
        if tier == "redis":  # new to this worker: the answer stale-if-error may give
            self._cache.remember(target.route, entry)
        now = self._cache.now()
        if entry is not None and now - entry.stored_at <= entry.ttl:
            self._serve(req, resp, entry, "hit", started, kind, tier)
            return
        in_window = (
            entry is not None and now - entry.stored_at <= entry.ttl + self._cache.stale_seconds
        )
        if in_window and self._refresh_later is not None:
            # Nobody waits: the entry answers, a background request replaces it.
            self._serve(req, resp, entry, "stale", started, kind, tier)
            self._refresh_later(req.scope, target.key)
            return
        # Served if computing this answer fails (503/504), whoever computes it: this key's
        # entry, or else the last answer to the same question under older generations
        # (Redis down as well).
        req.context.cache_stale = (
            entry if entry is not None else self._cache.last_known(target.route)
        )
        leader = self._cache.lead(target.key)
        if leader is not None:
            if in_window:
                self._serve(req, resp, entry, "stale", started, kind, tier)
                return
            try:
                shared = await asyncio.wait_for(asyncio.shield(leader), self._wait)
            except TimeoutError:
                shared = None
            if shared is not None:
                self._serve(req, resp, shared, "hit", started, kind, "local")
                return
            # The leader failed (or took too long): compute alone; should that fail too,
            # `cache_stale` answers as it would have for the leader.
        else:
            req.context.cache_key = target.key
            req.context.cache_ttl = target.ttl
            req.context.cache_route = target.route
        self._cache.record_lookup(kind, "miss", "none")
        resp.set_header("X-Cache", "miss")
        record_timing("cache", (time.perf_counter() - started) * 1000)

    async def _refresh(self, req: Request, resp: Response, target: Any) -> None:
        """A background refresh: recompute unless a request of this worker already is, or
        another worker already has. Every worker holds its own copy of an entry and comes to
        refresh it; the first one to recompute stores the new entry in Redis, and the others
        take that one instead of asking the database again."""
        if self._cache.lead(target.key) is not None:
            resp.status = falcon.HTTP_204  # nobody reads it: the leader stores the entry
            resp.complete = True
            return
        try:
            newer = await self._cache.refreshed_elsewhere(target.key)
        except BaseException:  # cancelled or failed: the readers waiting on us compute
            self._cache.finish(target.key, None)
            raise
        if newer is not None:
            self._cache.remember(target.route, newer)  # the answer stale-if-error may give
            self._cache.finish(target.key, newer)
            resp.status = falcon.HTTP_204  # nobody reads it: the newer entry is in place
            resp.complete = True
            return
        req.context.cache_key = target.key
        req.context.cache_ttl = target.ttl
        req.context.cache_route = target.route
        req.context.cache_stale = None

    def _serve(
        self,
        req: Request,
        resp: Response,
        entry: Any,
        state: str,
        started: float,
        kind: str,
        tier: str,
    ) -> None:
        self._cache.record_lookup(kind, state, tier)
        self._represent(req, resp, entry)
        resp.set_header("X-Cache", state)
        resp.set_header("Cache-Status", cache_status(state, entry, self._cache.now()))
        resp.complete = True
        record_timing("cache", (time.perf_counter() - started) * 1000)

    def _represent(self, req: Request, resp: Response, entry: Any) -> None:
        """Put `entry` in `resp`: a 304 when the client's validator matches, otherwise the
        stored form of the coding the client accepts."""
        matched = revalidation(req, entry.etag) if entry.etag else None
        if matched is not None:
            not_modified(resp, matched)  # the entry's ETag suffices: no body to set
            return
        resp.status = falcon.HTTP_200
        resp.content_type = entry.content_type
        for name, value in entry.headers:
            resp.set_header(name, value)
        self._send_form(req, resp, entry.body, entry.etag, entry.forms)

    @staticmethod
    def _send_form(
        req: Request, resp: Response, body: bytes, etag: str | None, forms: dict[str, bytes]
    ) -> None:
        """The body in the coding the client prefers among the stored forms (HEAD: as it is,
        as the compression wrapper sends it), with that form's own validator."""
        coding = None
        if forms and req.method == "GET":
            coding = negotiated(req.get_header("Accept-Encoding"))
        form = forms.get(coding) if coding is not None else None
        if form is None or coding is None:
            resp.data = body
            resp.etag = etag
            return
        resp.data = form
        resp.set_header("Content-Encoding", coding)
        resp.etag = coded_etag(etag, coding) if etag else None

    async def process_response(
        self, req: Request, resp: Response, resource: object, req_succeeded: bool
    ) -> None:
        key = getattr(req.context, "cache_key", None)
        if key is None:  # not the leader: nothing to store, but perhaps a failure to replace
            if resp.status_code in ERROR_STATUSES:
                self._serve_stale_on_error(req, resp)
            return
        entry = None
        if req_succeeded and resp.status_code == 200 and isinstance(resp.data, bytes):
            headers = [(h, v) for h in STORED_HEADERS if (v := resp.get_header(h)) is not None]
            body = resp.data
            forms = self._encode(body) if self._encode is not None else {}
            entry = self._cache.entry(
                body=body,
                etag=resp.etag,
                content_type=resp.content_type or falcon.MEDIA_JSON,
                headers=headers,
                ttl=req.context.cache_ttl,
                forms=forms,
            )
            if forms and (entry.etag is None or revalidation(req, entry.etag) is None):
                self._send_form(req, resp, body, entry.etag, forms)
            self._cache.remember(req.context.get("cache_route", ""), entry)
            try:
                await self._cache.put(key, entry)
            except Exception:  # the response is already correct; log and move on
                logger.exception("cache: could not store %s", key)
        elif resp.status_code in ERROR_STATUSES:
            self._serve_stale_on_error(req, resp)
        self._cache.finish(key, entry)

    def _serve_stale_on_error(self, req: Request, resp: Response) -> None:
        stale = req.context.get("cache_stale")
        if stale is None:
            return
        now = self._cache.now()
        if now - stale.stored_at > stale.ttl + self._cache.stale_if_error_seconds:
            return
        failed = resp.status_code
        resp.data = None
        resp.text = None
        resp.media = None
        resp.delete_header("Retry-After")
        resp.set_header("Cache-Control", REVALIDATE)  # the problem's no-store is not ours
        self._represent(req, resp, stale)
        resp.set_header("X-Cache", "stale")
        resp.set_header("Cache-Status", cache_status("stale", stale, now, failed))
        logger.warning("cache: serving a stale entry for %s: the origin answered %d",
                       req.path, failed)  # fmt: skip
