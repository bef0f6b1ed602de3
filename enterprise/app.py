"""The app factory: builds clients, repositories, services and resources, and wires them.

Nothing here does I/O. Clients connect on first use; `Lifecycle.process_startup` reads the
server's capabilities once and `process_shutdown` closes what this app opened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import falcon
import falcon.asgi
import redis.asyncio

from enterprise import __version__, openapi, problems
from enterprise.access_log import AccessLog
from enterprise.auth import with_metrics_token
from enterprise.breakers import BreakerBoard, Circuit, make_breaker
from enterprise.cache import ResponseCache
from enterprise.cache_targets import CacheTargets
from enterprise.capabilities import ServerCapabilities
from enterprise.cursor import CursorCodec
from enterprise.guard import WriteGuard
from enterprise.hot import HitObserver, HotReads, fixed
from enterprise.metrics import Metrics
from enterprise.ratelimit import RateLimiter, Rules
from enterprise.repositories.api_keys import ApiKeysRepository
from enterprise.repositories.assignments import AssignmentsRepository, ClinicStatsRepository
from enterprise.repositories.audit import AuditRepository
from enterprise.repositories.client import (
    CommandTimings,
    MongoClient,
    open_client,
    operation_timeout,
    ping,
    read_capabilities,
)
from enterprise.repositories.clinics import ClinicsRepository
from enterprise.repositories.errors import is_outage
from enterprise.repositories.explain import PlanExplainer
from enterprise.repositories.organizations import OrganizationsRepository
from enterprise.resources import health
from enterprise.resources.openapi import Specification
from enterprise.routes import Probes, Services, route_table
from enterprise.services.api_keys import ApiKeysService
from enterprise.services.assignments import AssignmentsService
from enterprise.services.audit import AuditEventsService, AuditTrail
from enterprise.services.clinics import ClinicsService
from enterprise.services.exports import ExportsService
from enterprise.services.organizations import OrganizationsService
from enterprise.services.reports import ReportsService
from enterprise.services.writes import AfterWrite, CacheInvalidation, WriteJournal, WriteObserver
from enterprise.settings import Settings
from enterprise.telemetry import Telemetry
from middleware.auth import AuthMiddleware
from middleware.budgets import BudgetMiddleware, BudgetTracker, RequestObserver
from middleware.compression import CompressionMiddleware, encoded_forms
from middleware.conditional import ConditionalMiddleware
from middleware.cors import CORSMiddleware
from middleware.deadline import DeadlineMiddleware
from middleware.disconnect import DisconnectMiddleware
from middleware.hot_path import HotPathMiddleware
from middleware.query_limits import QueryLimitMiddleware
from middleware.rate_limit import RateLimitMiddleware
from middleware.response_cache import ResponseCacheMiddleware
from middleware.security_headers import SecurityHeadersMiddleware

logger = logging.getLogger(__name__)
ASGIApp = Callable[..., Any]
# Monitoring must answer even when its key's quota is spent.
RATE_LIMIT_EXEMPT = ("/health/", "/metrics", "/dashboard")
# Served without an API key: probes, the dashboard (it asks for a key itself), the API's
# own description.
PUBLIC_PREFIXES = ("/health/", "/dashboard", "/openapi.json")
# Our longest legitimate query (a list with every filter, fields and a cursor) is under 1 KiB.
MAX_QUERY_BYTES = 8192
MAX_QUERY_PARAMS = 32


class Lifecycle:
    """Startup: read the capability record, arm the write guard. Shutdown: close clients."""

    def __init__(self, app_state: AppState, *, close_mongo: bool, close_redis: bool) -> None:
        self._state = app_state
        self._close_mongo = close_mongo
        self._close_redis = close_redis

    async def process_startup(self, scope: dict[str, Any], event: dict[str, Any]) -> None:
        if self._state.settings.metrics_enabled:
            self._state.telemetry.start()
        caps = self._state.capabilities or await read_capabilities(
            self._state.mongo, self._state.settings.mongodb_database
        )
        self._state.capabilities = caps
        # Where single-document updates are not atomic, serialise writes per document.
        self._state.guard.enabled = not caps.atomic_updates
        logger.info("server capabilities: %s", caps.as_dict())
        if self._state.guard.enabled:
            logger.warning(
                "server lacks atomic single-document updates: per-document write guard is on"
            )

    async def process_shutdown(self, scope: dict[str, Any], event: dict[str, Any]) -> None:
        if self._state.hot_path is not None:
            await self._state.hot_path.aclose()  # background refreshes use the clients
        await self._state.telemetry.stop()
        if self._state.metrics is not None:
            self._state.metrics.worker_exited()
        await self._state.explainer.aclose()
        # Background reads (lease renewals, units given back) hold Redis connections: let
        # them finish first.
        await self._state.limiter.aclose()
        await self._state.cache.aclose()
        if self._close_mongo:
            await self._state.mongo.close()
        if self._close_redis:
            await self._state.redis.aclose()


class AppState:
    """What the SRE endpoints and tests may inspect: the live objects, not copies."""

    def __init__(
        self,
        settings: Settings,
        mongo: MongoClient,
        redis: Any,
        guard: WriteGuard,
        cache: ResponseCache,
        budgets: BudgetTracker,
        timings: CommandTimings,
        *,
        telemetry: Telemetry,
        explainer: PlanExplainer,
        metrics: Metrics | None,
        limiter: RateLimiter,
        breakers: BreakerBoard,
    ) -> None:
        self.settings = settings
        self.breakers = breakers
        self.mongo = mongo
        self.redis = redis
        self.guard = guard
        self.cache = cache
        self.budgets = budgets
        self.timings = timings
        self.telemetry = telemetry
        self.explainer = explainer
        self.metrics = metrics
        # `limiter.allow` is what a pure-ASGI front calls to limit the answers it gives itself.
        self.limiter = limiter
        self.capabilities: ServerCapabilities | None = None
        # (template, resource) as routed; /openapi.json is generated from it.
        self.routes: list[tuple[str, object]] = []
        self.hot_path: HotPathMiddleware | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "server": self.capabilities.as_dict() if self.capabilities else None,
            "writeGuard": "on" if self.guard.enabled else "off",
            "breakers": {row["name"]: row["state"] for row in self.breakers.status()},
            "cache": self.cache.snapshot(),
            "rateLimits": self.limiter.snapshot(),
        }


def deadline_for(settings: Settings) -> Callable[[str, str], float]:
    """Per-route timeouts (seed 002): search 5 s, reports/export 120 s, the rest 30 s."""

    def timeout_for(method: str, path: str) -> float:
        if path.endswith("/search"):
            return settings.timeout_search
        if "/reports/" in path or "/export" in path:
            return settings.timeout_reports
        return settings.timeout_default

    return timeout_for


def after_write_for(settings: Settings, cache: ResponseCache, audit: AuditTrail) -> AfterWrite:
    """Journal every write in the audit trail; after it commits, invalidate the cache, then
    complete the audit record. `TEST_FAULT_CRASH` (tests only) adds its kill point here."""
    from enterprise import faults

    journal: WriteJournal = audit
    observers: list[WriteObserver] = [CacheInvalidation(cache)]
    if settings.test_fault_crash == "before-write":
        journal = faults.CrashBeforeWrite(audit)
    elif settings.test_fault_crash == "after-write":
        observers.append(faults.CrashAfterWrite())
    return AfterWrite([*observers, audit], journal=journal)


def driver_share(seconds: float) -> float:
    """The driver's share of a request's deadline: all but 5% of it, and at least 0.75 s
    (at most 1 s) less, but never under half. The driver then gives up first (maxTimeMS,
    server selection) and the request ends in the app, as a 504 or 503 problem that is
    recorded like any answer and that stale-if-error can replace with a stored entry; the
    outer cancel at 100% stays the backstop for work that is not the driver's. The margin
    leaves room for the repositories' own bound on reads, which comes after the driver's
    deadline and after PyMongo's server selection may overrun it (enterprise/repositories/
    base.py)."""
    margin = min(1.0, max(0.75, seconds * 0.05))
    return max(seconds - margin, seconds / 2)


def open_redis(settings: Settings) -> redis.asyncio.Redis:
    """The Redis client: short timeouts, so a stalled Redis trips the breaker, not requests."""
    return redis.asyncio.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_socket_timeout_s,
        socket_connect_timeout=settings.redis_socket_timeout_s,
    )


class Platform(NamedTuple):
    """The clients and what guards them: built once per app, shared by every request."""

    mongo: MongoClient
    redis: Any
    metrics: Metrics | None
    explainer: PlanExplainer
    timings: CommandTimings
    breakers: BreakerBoard
    mongo_circuit: Circuit
    cache: ResponseCache
    limiter: RateLimiter
    guard: WriteGuard


def build_platform(
    settings: Settings,
    mongo: MongoClient | None,
    redis_client: Any | None,
    cache_clock: Callable[[], float],
) -> Platform:
    """The clients (the ones given, or new ones), their breakers, the response cache, the
    rate limiter and the write guard."""
    metrics = Metrics(settings.prometheus_multiproc_dir) if settings.metrics_enabled else None
    explainer = PlanExplainer()
    timings = CommandTimings(
        settings.db_slow_query_threshold,
        explainer=explainer,
        on_command=metrics.observe_command if metrics else None,
    )
    mongo = mongo or open_client(settings, [timings])
    explainer.bind(mongo)
    redis_client = redis_client or open_redis(settings)

    breakers = BreakerBoard(metrics.breaker_state if metrics else None)

    def breaker(name: str, **options: Any) -> Any:
        return breakers.add(
            make_breaker(
                name,
                failure_threshold=settings.circuit_breaker_failure_threshold,
                enabled=settings.circuit_breaker_enabled,
                reset_timeout=settings.circuit_breaker_reset_timeout,
                **options,
            )
        )

    redis_breaker = breaker("redis")
    # Every repository call goes through this one: while open, they fail fast with 503.
    mongo_circuit = Circuit(
        breaker("mongodb", counts=is_outage),
        probe=(lambda: ping(mongo, 1.0)) if settings.circuit_breaker_enabled else None,
        stall_s=settings.circuit_breaker_stall_seconds,
    )
    cache = ResponseCache(
        redis_client,
        redis_breaker,
        enabled=settings.cache_enabled,
        local_max_entries=settings.cache_local_max_entries,
        degraded_ttl=settings.cache_local_ttl,
        stale_seconds=settings.cache_stale_seconds,
        stale_if_error_seconds=settings.stale_if_error_seconds,
        ttl_jitter=settings.cache_ttl_jitter,
        refresh_ahead=settings.cache_refresh_ahead,
        namespace=settings.mongodb_database,
        generation_lease_s=settings.cache_generation_lease_ms / 1000,
        clock=cache_clock,
    )
    limiter = RateLimiter(
        redis_client,
        redis_breaker,
        Rules.parse(settings.rate_limits),
        local_share=settings.local_rate_share,
        workers=settings.workers,
        lease_s=settings.rate_limit_lease_ms / 1000,
        namespace=settings.mongodb_database,
    )
    guard = WriteGuard(
        enabled=False,
        redis=redis_client,
        workers=settings.workers,
        namespace=settings.mongodb_database,
        lease_ms=settings.write_lock_lease_ms,
        wait_ms=settings.write_lock_wait_ms,
        on_refusal=metrics.refusal if metrics else None,
        circuit=Circuit(redis_breaker),
    )
    return Platform(
        mongo, redis_client, metrics, explainer, timings, breakers, mongo_circuit, cache,
        limiter, guard,
    )  # fmt: skip


def build_services(settings: Settings, platform: Platform) -> tuple[Services, ApiKeysService]:
    """Repositories and the services over them; API keys apart (authentication uses them)."""
    db = platform.mongo[settings.mongodb_database]
    repo_options: dict[str, Any] = {
        "guard": platform.guard,
        "count_cap": settings.count_cap,
        "count_max_time_ms": settings.count_max_time_ms,
        "circuit": platform.mongo_circuit,
        "coalesce_reads": settings.db_coalesce_reads,
    }
    organization_repo = OrganizationsRepository(db, **repo_options)
    clinic_repo = ClinicsRepository(db, **repo_options)
    assignment_repo = AssignmentsRepository(db, **repo_options)
    audit_repo = AuditRepository(db, **repo_options)
    after_write = after_write_for(settings, platform.cache, AuditTrail(audit_repo))
    codec = CursorCodec(settings.cursor_secret)
    service_options: dict[str, Any] = {"codec": codec, "after_write": after_write}
    services = Services(
        organizations=OrganizationsService(organization_repo, clinic_repo, **service_options),
        clinics=ClinicsService(clinic_repo, organization_repo, **service_options),
        assignments=AssignmentsService(assignment_repo, clinic_repo, **service_options),
        reports=ReportsService(
            organization_repo, ClinicStatsRepository(db, **repo_options), assignment_repo
        ),
        exports=ExportsService(
            organization_repo,
            {"clinics": clinic_repo, "assignments": assignment_repo},
            batch_size=settings.export_batch_size,
        ),
        audit_events=AuditEventsService(audit_repo, codec=codec),
    )
    return services, ApiKeysService(ApiKeysRepository(db, **repo_options))


def falcon_app(
    settings: Settings,
    state: AppState,
    keys: ApiKeysService,
    targets: CacheTargets,
    observers: list[RequestObserver],
    lifecycle: Lifecycle,
) -> falcon.asgi.App[Any, Any]:
    """Falcon and its middleware, in order. Budgets first, so every request is timed,
    short-circuits included; then bounds on the query string (no work for an abusive one);
    then who is asking; then their rate limit (after routing: the resource names the route
    class; before revalidation and the cache, so 304s and hits count too); then revalidation
    (a 304 needs no cache lookup and no database); then the response cache, whose hits skip
    the resource."""
    cache = state.cache
    middleware: list[Any] = [
        lifecycle,
        BudgetMiddleware(state.budgets, observers=observers),
        QueryLimitMiddleware(max_bytes=MAX_QUERY_BYTES, max_params=MAX_QUERY_PARAMS),
        AuthMiddleware(
            with_metrics_token(keys.authenticate, settings.metrics_token),
            public_prefixes=PUBLIC_PREFIXES,
        ),
        *(
            [RateLimitMiddleware(state.limiter.allow, exempt_prefixes=RATE_LIMIT_EXEMPT)]
            if settings.rate_limit_enabled
            else []
        ),
        ConditionalMiddleware(targets.describe, require_if_match=settings.require_if_match),
        ResponseCacheMiddleware(
            cache,
            targets.describe,
            encode=lambda body: encoded_forms(
                body,
                minimum_size=settings.compression_min_bytes,
                brotli_quality=settings.brotli_quality,
                gzip_level=settings.gzip_level,
            ),
            # The hot path (built outside Falcon) replays requests in the background.
            refresh=lambda scope, key: (
                state.hot_path.refresh(scope, key) if state.hot_path is not None else None
            ),
        ),
    ]
    app: falcon.asgi.App[Any, Any] = falcon.asgi.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    app.resp_options.default_media_type = falcon.MEDIA_JSON
    problems.register(app)
    return app


def outer_layers(
    app: ASGIApp,
    settings: Settings,
    state: AppState,
    hot_reads: HotReads,
    track: Callable[[int], None] | None,
) -> HotPathMiddleware:
    """The raw ASGI layers around Falcon, outermost first: one wrapper, the hot path, counts
    the request in flight, binds its id and timings (X-Request-Id, Server-Timing) and
    answers cache hits, their 304s and /health/live before any other layer runs, with the
    headers the layers inside it would add (security headers; CORS' Vary), made once per
    stored answer; requests with an Origin go on to CORS. Inside it: security headers and
    CORS on every other answer, preflights answered before any work; the deadline bounds all
    work inside it (pymongo gets maxTimeMS for what is left); a streamed response stops when
    its client leaves (the disconnect surfaces as a failed send, through compression, to the
    stream); compression sees the final body."""
    wrapped: ASGIApp = CompressionMiddleware(
        app,
        minimum_size=settings.compression_min_bytes,
        brotli_quality=settings.brotli_quality,
        gzip_level=settings.gzip_level,
        stream_levels=(settings.stream_brotli_quality, settings.stream_gzip_level),
    )
    wrapped = DisconnectMiddleware(wrapped)
    wrapped = DeadlineMiddleware(
        wrapped,
        timeout_for=deadline_for(settings),
        scope_factory=operation_timeout,
        driver_share=driver_share,
    )
    cors = bool(settings.cors_origin_list)
    if cors:  # a preflight is answered here, before any app work
        wrapped = CORSMiddleware(
            wrapped,
            origins=settings.cors_origin_list,
            allow_credentials=settings.cors_allow_credentials,
            max_age=settings.cors_max_age,
        )
    # Every answer the hot path does not give itself: preflights and the deadline's 504s too.
    security = wrapped = SecurityHeadersMiddleware(wrapped, hsts_seconds=settings.hsts_seconds)
    vary_origin = [(b"vary", b"Origin")] if cors else []

    def closing(headers: list[tuple[bytes, bytes]], authenticated: bool) -> list[Any]:
        return [*security.added(headers, authenticated), *vary_origin]

    hot_path = state.hot_path = HotPathMiddleware(
        wrapped,
        find=hot_reads.find,
        record=hot_reads.record,
        before_hit=hot_reads.before_hit,
        # From the first byte to the last: a request cancelled by its deadline ends too.
        track=track,
        closing=closing,
        defer_origin=cors,
        max_refreshes=settings.cache_refresh_concurrency,
    )
    return hot_path


def create_app(
    settings: Settings,
    *,
    mongo: MongoClient | None = None,
    redis_client: Any | None = None,
    access_log: AccessLog | None = None,
    capabilities: ServerCapabilities | None = None,
    cache_clock: Callable[[], float] = time.time,
) -> ASGIApp:
    """Wire the service. Pass `mongo`/`redis_client` to share clients (tests, benchmarks),
    a started `access_log` to have a line written per request (`ACCESS_LOG`),
    `capabilities` to skip reading (and probing) the server again at startup, and
    `cache_clock` for the response cache's entry ages (a test's own clock)."""
    platform = build_platform(settings, mongo, redis_client, cache_clock)
    services, keys = build_services(settings, platform)
    metrics = platform.metrics
    budgets = BudgetTracker(settings.budgets_ms)
    telemetry = Telemetry(
        budgets=budgets,
        cache=platform.cache,
        breakers=platform.breakers,
        timings=platform.timings,
        guard=platform.guard,
        metrics=metrics,
        directory=settings.prometheus_multiproc_dir,
        interval_s=settings.sre_snapshot_interval_s,
    )
    state = AppState(
        settings,
        platform.mongo,
        platform.redis,
        platform.guard,
        platform.cache,
        budgets,
        platform.timings,
        telemetry=telemetry,
        explainer=platform.explainer,
        metrics=metrics,
        limiter=platform.limiter,
        breakers=platform.breakers,
    )
    state.capabilities = capabilities
    observers: list[RequestObserver] = [metrics.observe_request] if metrics else []
    if access_log is not None:
        observers.append(access_log.observe)
    targets = CacheTargets(platform.cache)
    lifecycle = Lifecycle(state, close_mongo=mongo is None, close_redis=redis_client is None)
    app = falcon_app(settings, state, keys, targets, observers, lifecycle)

    specification = Specification()
    probes = Probes(
        mongo=lambda: ping(platform.mongo, 1.0),
        redis=lambda: platform.redis.ping(),
        describe=state.describe,
    )
    state.routes = route_table(
        settings, services, probes, telemetry=telemetry, metrics=metrics,
        specification=specification,
    )  # fmt: skip
    for template, resource in state.routes:
        app.add_route(template, resource)
    # Built here, once, from what is routed: it cannot drift from the routes (pure CPU).
    specification.publish(
        openapi.render(
            openapi.build(state.routes, version=__version__, public_prefixes=PUBLIC_PREFIXES)
        )
    )

    hit_observers: list[HitObserver] = [metrics.observe_hit] if metrics else []
    if access_log is not None:
        hit_observers.append(access_log.observe_hit)
    hot_reads = HotReads(
        keys,
        targets,
        platform.cache,
        budgets,
        hit_observers,
        static={
            "/health/live": fixed(
                "/health/live", health.Live.budget_class, health.LIVE_BODY, health.LIVE_HEADERS
            )
        },
        limiter=platform.limiter if settings.rate_limit_enabled else None,
        exempt_prefixes=RATE_LIMIT_EXEMPT,
    )
    track = telemetry.track_inflight if metrics is not None else None
    wrapped = outer_layers(app, settings, state, hot_reads, track)
    wrapped.state = state  # type: ignore[attr-defined]
    return wrapped
