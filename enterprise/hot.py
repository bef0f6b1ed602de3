"""What the hot path (middleware/hot_path.py) may answer, decided with no I/O.

A GET is answered before Falcon runs only when everything the full stack would check is at
hand in this process, so the answer is the one the full stack would give:

* the bearer key's principal is in the key cache (revocation delay as for every request);
* this principal's tenant scope has sent this exact path and query before, so the route's
  cache plan (generation names, TTL, route template, budget class) is known;
* the route's generations are under the lease (enterprise/leases.py) and equal to the ones
  the plan's key was made from: no write acknowledged anywhere since, across workers;
* its entry is in the in-process tier, fresh or inside the stale-while-revalidate window.

A few fixed answers (`/health/live`) are served there too, from `static`.
Anything else (a miss, Redis needed, degraded mode, a new route) goes through the app.
Hits are recorded as the app records requests (budgets, cache lookups, metrics, access log),
through `HitObserver`s that take what the hot path holds: no request objects, no context.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Coroutine, Mapping, Sequence
from typing import NamedTuple, Protocol

from enterprise.cache import Entry, ResponseCache
from enterprise.cache_targets import CacheTargets
from enterprise.context import RequestTimings
from enterprise.ratelimit import LATER, Decision, RateLimiter
from enterprise.services.api_keys import ApiKeysService
from middleware.budgets import BudgetTracker
from middleware.hot_path import STATIC, Headers, Hit
from middleware.request_context import Scope


class HitObserver(Protocol):
    """Told of each answer the hot path gives, as `RequestObserver`s are of the app's
    (middleware/budgets.py), with what it already holds: no request objects are made for
    it, and the request's id and timings are handed over, not looked up in context."""

    def __call__(
        self,
        template: str,
        status: int,
        x_cache: str | None,
        key_id: str | None,
        ms: float,
        request_id: str,
        timings: RequestTimings,
    ) -> None: ...


class Fixed(NamedTuple):
    """A fixed answer (a path's only GET response) and how its route is recorded."""

    template: str
    route_class: str
    entry: Entry
    route: str  # the budget's name for it: "GET <template>"


def fixed(template: str, route_class: str, body: bytes, headers: list[tuple[str, str]]) -> Fixed:
    entry = Entry(body, None, "application/json", headers, stored_at=0.0, ttl=math.inf)
    return Fixed(template, route_class, entry, f"GET {template}")


class HotReads:
    """`find` and `record` for the hot path. A hit past its entry's `refresh_at` (drawn
    by the cache in the TTL's last fraction) or stale asks for a background refresh."""

    def __init__(
        self,
        keys: ApiKeysService,
        targets: CacheTargets,
        cache: ResponseCache,
        budgets: BudgetTracker,
        observers: Sequence[HitObserver],
        *,
        static: Mapping[str, Fixed] | None = None,
        limiter: RateLimiter | None = None,
        exempt_prefixes: tuple[str, ...] = (),
    ) -> None:
        self._keys = keys
        self._targets = targets
        self._cache = cache
        self._budgets = budgets
        self._observers = tuple(observers)
        self._static = dict(static or {})
        self._limiter = limiter
        self._exempt = exempt_prefixes
        self._limited: dict[str, bool] = {}  # route template -> rate limited

    def before_hit(
        self, scope: Scope, hit: Hit
    ) -> Headers | None | Coroutine[None, None, Headers | None]:
        """The rate limit, as the app applies it (middleware/rate_limit.py), for hits too:
        its headers on an admitted hit; None (the app answers, and refuses) past the limit.
        Decided in place from this worker's credit; a coroutine to await when it needs Redis.
        """
        limiter = self._limiter
        if limiter is None or hit.state == STATIC:
            return []
        plan, principal = hit.context
        limited = self._limited.get(plan.template)
        if limited is None:  # once per route: is it exempt?
            limited = self._limited[plan.template] = not plan.template.startswith(self._exempt)
        if not limited:
            return []
        # A StrEnum: it hashes and compares as its value, so it serves as the role as it is.
        role = principal.role
        fields = limiter.admit_now(principal.key_id, role, plan.route_class, "GET")
        if fields is LATER:
            return self._asked(limiter.allow(principal.key_id, str(role), plan.route_class, "GET"))
        return fields

    @staticmethod
    async def _asked(decision: Awaitable[Decision | None]) -> Headers | None:
        admitted = await decision
        if admitted is None:  # no rule limits this request
            return []
        return admitted.fields() if admitted.allowed else None

    def find(self, scope: Scope) -> Hit | None:
        answer = self._static.get(scope["path"])
        if answer is not None:
            if scope["query_string"]:
                return None  # the app's parameter checks decide
            return Hit(answer.entry, STATIC, None, answer, 0.0)
        cache = self._cache
        query: bytes = scope["query_string"]
        if not cache.enabled or not query.isascii():
            return None
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
                break
        if authorization is None:
            return None
        scheme, _, raw_key = bytes(authorization).decode("latin-1").partition(" ")
        if scheme.lower() != "bearer":
            return None
        principal = self._keys.cached(raw_key.strip())
        if principal is None:
            return None
        plan = self._targets.known(principal.cache_scope, scope["path"], query.decode("ascii"))
        if plan is None or plan.target is None or cache.leased(plan.keys) != plan.token:
            return None
        entry = cache.get_local(plan.target.key)
        if entry is None:
            return None
        now = cache.now()
        age = now - entry.stored_at
        if age > entry.ttl + cache.stale_seconds:
            return None  # the app decides: recompute, or stale-if-error
        state = "hit" if age <= entry.ttl else "stale"
        refresh = state == "stale" or now >= entry.refresh_at
        return Hit(entry, state, plan.target.key if refresh else None, (plan, principal), now)

    def record(
        self, hit: Hit, status: int, ms: float, request_id: str, timings: RequestTimings
    ) -> None:
        timings.add("route", ms)
        if hit.state == STATIC:
            answer: Fixed = hit.context
            self._budgets.record(answer.route, answer.route_class, ms)
            for observe in self._observers:
                observe(answer.template, status, None, None, ms, request_id, timings)
            return
        plan, principal = hit.context
        self._cache.record_lookup(plan.kind, hit.state, "local")
        self._budgets.record(plan.route, plan.route_class, ms)
        for observe in self._observers:
            observe(plan.template, status, hit.state, principal.key_id, ms, request_id, timings)
