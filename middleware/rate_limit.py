"""Rate limits on the HTTP side: a thin adapter around an injected `allow` callable.

The app injects `allow(key_id, role, route_class, method)`, which returns a decision (any
object with the attributes of :class:`Decision`) or None for an unlimited request. Every
limited answer carries the quota and what is left of it, in the fields of the IETF httpapi
draft (draft-ietf-httpapi-ratelimit-headers-10, §3 and §4, September 2025; unchanged in -11):

    RateLimit-Policy: "default";q=100;w=60      quota units per window (seconds)
    RateLimit: "default";r=42;t=17             remaining units; seconds until the quota resets

A refused request gets 429 application/problem+json with `Retry-After` (RFC 9110 §10.2.3).
`rate_limit_headers` and `refusal` are plain functions, so a pure-ASGI front that answers
before Falcon (cache hits, 304s) gives the same answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import falcon
from falcon.asgi import Request, Response

from middleware.response_cache import REFRESH


class Decision(Protocol):
    @property
    def allowed(self) -> bool: ...
    @property
    def remaining(self) -> int: ...
    @property
    def reset_s(self) -> int: ...
    @property
    def retry_after_s(self) -> int: ...
    @property
    def policy(self) -> str: ...


Allow = Callable[[str, str, str, str], Awaitable[Decision | None]]


def rate_limit_headers(decision: Decision) -> list[tuple[str, str]]:
    """The draft's two fields, plus `Retry-After` on a refusal."""
    headers = [
        ("RateLimit-Policy", decision.policy),
        ("RateLimit", f'"default";r={decision.remaining};t={decision.reset_s}'),
    ]
    if not decision.allowed:
        headers.append(("Retry-After", str(max(1, decision.retry_after_s))))
    return headers


def refusal(decision: Decision) -> falcon.HTTPError:
    """The 429 (rendered as problem+json by the app's error handler)."""
    return falcon.HTTPTooManyRequests(
        title="Too Many Requests",
        description=(
            f"rate limit reached for this API key, route and method; retry in "
            f"{max(1, decision.retry_after_s)} s"
        ),
        headers=rate_limit_headers(decision),
    )


class RateLimitMiddleware:
    """Limits authenticated requests after routing (the resource names the route class).

    Args:
        allow: see the module docstring.
        exempt_prefixes: paths never limited (health, metrics: monitoring must not be
            starved by its own key's traffic).

    A background refresh (``REFRESH`` in the scope: the hot path replaying a GET late in its
    TTL with the client's credentials) is not limited either: the client never sent it, so
    it must neither spend the key's quota nor be refused by it.
    """

    def __init__(self, allow: Allow, *, exempt_prefixes: tuple[str, ...] = ()) -> None:
        self._allow = allow
        self._exempt = exempt_prefixes

    async def process_resource(
        self, req: Request, resp: Response, resource: object, params: dict[str, Any]
    ) -> None:
        principal = req.context.get("principal")
        if principal is None or req.path.startswith(self._exempt) or req.scope.get(REFRESH):
            return
        route_class = getattr(resource, "budget_class", "default")
        decision = await self._allow(principal.key_id, str(principal.role), route_class, req.method)
        if decision is None:
            return
        if not decision.allowed:
            raise refusal(decision)
        req.context.rate_limit = decision

    async def process_response(
        self, req: Request, resp: Response, resource: object, req_succeeded: bool
    ) -> None:
        decision = req.context.get("rate_limit")
        if decision is not None:
            for name, value in rate_limit_headers(decision):
                resp.set_header(name, value)
