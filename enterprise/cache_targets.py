"""Which cache entry a request reads: the HTTP side of the response cache.

Resources declare `cache_policy(req, params) -> (generation names, ttl, is_list)`
(enterprise/generations.py names the generations). `CacheTargets` turns a request into its
`CacheTarget`: the key covers the generations, the caller's role and tenant, the path and
the normalised query, so a hit can never cross tenants or roles. The store itself (entries,
the local LRU, Redis, generations, single flight) is enterprise/cache.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, NamedTuple

from enterprise.cache import ResponseCache
from enterprise.etags import list_etag


class CacheTarget(NamedTuple):  # built on every cacheable request: a tuple is cheapest
    key: str
    ttl: float
    list_etag: str | None
    # The key without the generations: the same question whatever the data's generation (the
    # last answer to it is what stale-if-error can still give once the key has moved on).
    route: str = ""


Route = tuple[str, str, str]  # (caller's cache scope, path, raw query string)
_UNPLANNED: Any = object()  # a route not seen yet (None: seen, and not cacheable)


@dataclass(slots=True)
class Plan:
    """What every request of one route shares: its generation keys, TTL and kind, and the
    target for the generations it last saw (they change only when something is written)."""

    names: list[str]
    keys: tuple[str, ...]
    ttl: float
    is_list: bool
    # For answering a GET before Falcon runs (enterprise/hot.py): how the route is recorded.
    template: str
    route: str
    route_class: str
    kind: str
    token: str | None = None
    target: CacheTarget | None = None

    def target_for(self, token: str, route: Route, params: dict[str, Any]) -> CacheTarget:
        """The target under the generations `token`, kept as the plan's latest."""
        scope, path, _ = route
        query = "&".join(f"{k}={v}" for k, v in sorted(params.items())) if params else ""
        material = f"{token}|{scope}|{path}?{query}"
        digest = hashlib.blake2s(material.encode(), digest_size=16).hexdigest()
        question = f"{scope}|{path}?{query}".encode()
        self.target = target = CacheTarget(
            key=f"{token[0]}:{digest}",
            ttl=self.ttl,
            list_etag=list_etag(material) if self.is_list else None,
            route=hashlib.blake2s(question, digest_size=16).hexdigest(),
        )
        self.token = token
        return target


class CacheTargets:
    """Turns a request into its cache target; memoised on the request.

    A policy depends on the route only, so what it decides is remembered per (scope, path,
    raw query), up to `max_remembered` routes, together with the target of the generations
    last seen: a repeated request calls no policy and hashes nothing.
    """

    def __init__(self, cache: ResponseCache, *, max_remembered: int = 10_000) -> None:
        self._cache = cache
        self._plans: dict[Route, Plan | None] = {}
        self._max_remembered = max_remembered

    async def describe(
        self, req: Any, resource: object, params: dict[str, Any]
    ) -> CacheTarget | None:
        context = req.context
        if "cache_target" in context:
            target: CacheTarget | None = context.cache_target
            return target
        target = None
        principal = context.get("principal")
        if principal is not None:
            route = (principal.cache_scope, req.path, req.query_string)
            plan = self._plans.get(route, _UNPLANNED)
            if plan is _UNPLANNED:
                plan = self._plan(route, req, resource, params)
            # Lists need generations for their ETag; items only for a cache key.
            if plan is not None and (plan.is_list or self._cache.enabled):
                cache = self._cache
                token = cache.leased(plan.keys) or await cache.generations(plan.names, plan.keys)
                target = (
                    plan.target
                    if token == plan.token
                    else plan.target_for(token, route, req.params)
                )
        context.cache_target = target
        return target

    def known(self, cache_scope: str, path: str, query_string: str) -> Plan | None:
        """The plan of a route a request has already been through, with no await and no
        policy call; None for a route not seen yet or not cacheable."""
        return self._plans.get((cache_scope, path, query_string))

    def _plan(
        self, route: Route, req: Any, resource: object, params: dict[str, Any]
    ) -> Plan | None:
        policy = getattr(resource, "cache_policy", None)
        decided = policy(req, params) if policy is not None else None
        plan = None
        if decided is not None:
            names, ttl, is_list = decided
            plan = Plan(
                names,
                self._cache.generation_keys(names),
                float(ttl),
                is_list,
                template=req.uri_template,
                route=f"GET {req.uri_template}",
                route_class=getattr(resource, "budget_class", "default"),
                kind=getattr(resource, "cache_kind", "other"),
            )
        if len(self._plans) >= self._max_remembered:
            self._plans = {}
        self._plans[route] = plan
        return plan
