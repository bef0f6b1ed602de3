"""Response cache (cache-aside) for GET: hits short-circuit before the resource runs.

The app injects `describe(req, resource, params)`, which returns the request's cache target
(key with generations, TTL, list ETag) or None for uncacheable requests, and the cache store.
The resource's `cache_kind` attribute (organizations, lists, reports …) labels the counters.
Single flight: one request per key computes, the others wait for it. Stale-while-revalidate:
past its TTL an entry is still served (`X-Cache: stale`) while one request refreshes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import falcon
from falcon.asgi import Request, Response

from middleware.conditional import not_modified, revalidation
from middleware.request_context import record_timing

logger = logging.getLogger(__name__)
STORED_HEADERS = ("Link", "X-Total-Count", "X-Count-Strategy")


class ResponseCacheMiddleware:
    def __init__(
        self,
        cache: Any,
        describe: Callable[[Request, object, dict[str, Any]], Awaitable[Any | None]],
        *,
        wait_for_leader_s: float = 5.0,
    ) -> None:
        self._cache = cache
        self._describe = describe
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
        now = self._cache.now()
        if entry is not None and now - entry.stored_at <= entry.ttl:
            self._serve(req, resp, entry, "hit", started, kind, tier)
            return
        leader = self._cache.lead(target.key)
        if leader is not None:
            if entry is not None and now - entry.stored_at <= entry.ttl + self._cache.stale_seconds:
                self._serve(req, resp, entry, "stale", started, kind, tier)
                return
            try:
                shared = await asyncio.wait_for(asyncio.shield(leader), self._wait)
            except TimeoutError:
                shared = None
            if shared is not None:
                self._serve(req, resp, shared, "hit", started, kind, "local")
                return
        else:
            req.context.cache_key = target.key
            req.context.cache_ttl = target.ttl
        self._cache.record_lookup(kind, "miss", "none")
        resp.set_header("X-Cache", "miss")
        record_timing("cache", (time.perf_counter() - started) * 1000)

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
        matched = revalidation(req, entry.etag) if entry.etag else None
        if matched is not None:
            not_modified(resp, matched)  # the entry's ETag suffices: no body to set
        else:
            resp.data = entry.body
            resp.content_type = entry.content_type
            resp.etag = entry.etag
            for name, value in entry.headers:
                resp.set_header(name, value)
        resp.set_header("X-Cache", state)
        resp.complete = True
        record_timing("cache", (time.perf_counter() - started) * 1000)

    async def process_response(
        self, req: Request, resp: Response, resource: object, req_succeeded: bool
    ) -> None:
        key = getattr(req.context, "cache_key", None)
        if key is None:
            return
        entry = None
        if req_succeeded and resp.status_code == 200 and isinstance(resp.data, bytes):
            headers = [(h, v) for h in STORED_HEADERS if (v := resp.get_header(h)) is not None]
            entry = self._cache_entry(resp, headers, req.context.cache_ttl)
            try:
                await self._cache.put(key, entry)
            except Exception:  # the response is already correct; log and move on
                logger.exception("cache: could not store %s", key)
        self._cache.finish(key, entry)

    def _cache_entry(self, resp: Response, headers: list[tuple[str, str]], ttl: float) -> Any:
        return self._cache.entry(
            body=resp.data,
            etag=resp.etag,
            content_type=resp.content_type or falcon.MEDIA_JSON,
            headers=headers,
            ttl=ttl,
        )
