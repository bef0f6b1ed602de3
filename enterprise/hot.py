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
Hits are recorded as the app records requests: budgets, cache lookups, metrics, access log.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Coroutine, Mapping, Sequence
from typing import Any, NamedTuple

from enterprise.cache import Entry, ResponseCache
from enterprise.cache_targets import CacheTargets
from enterprise.context import record_timing
from enterprise.ratelimit import LATER, Decision, RateLimiter
from enterprise.services.api_keys import ApiKeysService
from middleware.budgets import BudgetTracker, RequestObserver
from middleware.hot_path import STATIC, Headers, Hit
from middleware.request_context import Scope


class _Seen:
    """A hit as request observers see requests (method, template, context, status, X-Cache)."""

    __slots__ = ("context", "method", "status_code", "uri_template", "x_cache")

    def __init__(self, template: str, principal: Any, status: int, x_cache: str) -> None:
        self.method = "GET"
        self.uri_template = template
        self.context = {"principal": principal}
        self.status_code = status
        self.x_cache = x_cache

    def get_header(self, name: str, default: str | None = None) -> str | None:
        if name.lower() == "x-cache" and self.x_cache != STATIC:
            return self.x_cache
        return default


class Fixed(NamedTuple):
    """A fixed answer (a path's only GET response) and how its route is recorded."""

    template: str
    route_class: str
    entry: Entry


def fixed(template: str, route_class: str, body: bytes, headers: list[tuple[str, str]]) -> Fixed:
    entry = Entry(body, None, "application/json", headers, stored_at=0.0, ttl=math.inf)
    return Fixed(template, route_class, entry)


class HotReads:
    """`find` and `record` for the hot path. A hit past its entry's `refresh_at` (drawn
    by the cache in the TTL's last fraction) or stale asks for a background refresh."""

    def __init__(
        self,
        keys: ApiKeysService,
        targets: CacheTargets,
        cache: ResponseCache,
        budgets: BudgetTracker,
        observers: Sequence[RequestObserver],
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

    def record(self, hit: Hit, status: int, x_cache: str, ms: float) -> None:
        record_timing("route", ms)
        if hit.state == STATIC:
            answer: Fixed = hit.context
            self._budgets.record(f"GET {answer.template}", answer.route_class, ms)
            self._observe(answer.template, None, status, x_cache, answer.route_class, ms)
            return
        plan, principal = hit.context
        self._cache.record_lookup(plan.kind, hit.state, "local")
        self._budgets.record(plan.route, plan.route_class, ms)
        self._observe(plan.template, principal, status, x_cache, plan.route_class, ms)

    def _observe(
        self, template: str, principal: Any, status: int, x_cache: str, route_class: str, ms: float
    ) -> None:
        if self._observers:
            seen = _Seen(template, principal, status, x_cache)
            for observe in self._observers:
                observe(seen, seen, route_class, ms)  # type: ignore[arg-type]
