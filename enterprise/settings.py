"""Configuration: one frozen object, built from the environment in one place.

`Settings.from_env()` is the only code in the service that reads `os.environ`; everything
else receives the settings (or the piece it needs) through its constructor.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from enterprise.ratelimit import DEFAULT_RULES, Rules
from indexes.audit_events import RETENTION_SECONDS


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected a boolean, got {raw!r}")


# P95 targets in milliseconds per route class (seed 002).
DEFAULT_BUDGETS_MS: dict[str, float] = {
    "organizations": 150.0,
    "clinics": 150.0,
    "assignments": 200.0,
    "lists": 200.0,
    "search": 300.0,
    "reports": 2000.0,
    "default": 500.0,
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of the service. Field names map to upper-case environment variables."""

    mongodb_uri: str = "mongodb://127.0.0.1:27018/"
    mongodb_database: str = "enterprise"
    redis_url: str = "redis://127.0.0.1:6380/0"

    # Connection pools and slow-query log.
    db_pool_size: int = 10
    db_max_pool_size: int = 100
    db_server_selection_timeout_ms: int = 2000
    db_connect_timeout_ms: int = 2000
    db_slow_query_threshold: int = 100
    # Concurrent reads by id of one collection share one `$in` query (group commit).
    db_coalesce_reads: bool = True
    redis_socket_timeout_s: float = 0.25

    # Response cache (seconds).
    cache_enabled: bool = True
    cache_ttl_organization: int = 300
    cache_ttl_clinic: int = 300
    cache_ttl_assignment: int = 60
    cache_ttl_list: int = 30
    cache_ttl_stats: int = 120
    cache_stale_seconds: int = 30
    # A hit past a point drawn at random, per worker and entry, in the last fraction of its
    # TTL refreshes the entry in the background (one refresh per key per worker), so a key
    # being read never expires under its readers. The first worker there recomputes it; the
    # others, later, take its newer entry from Redis.
    cache_refresh_ahead: float = 0.2
    # Background refreshes running at once per worker, at most: entries that come due
    # together are recomputed one after another while they go on answering. A refresh is a
    # whole request's work on the worker's event loop; one at a time, a reader waits behind
    # at most one step of one refresh. loadtests/refresh_concurrency.sh (docs/benchmarks.md):
    # under six times the shipped refresh rate, P99 10.7 ms at 1 against 22 ms at 2 and
    # 82 ms at 4, at the cost of more answers served stale (within CACHE_STALE_SECONDS)
    # while their refresh waits its turn.
    cache_refresh_concurrency: int = 1
    # TTLs are shortened by a random fraction up to this, so entries stored together (a
    # warm-up, a deploy) do not all expire in the same second.
    cache_ttl_jitter: float = 0.1
    # A refresh (or a miss with an expired entry) that fails with 503/504 (MongoDB down, its
    # breaker open, its deadline passed) serves the expired entry up to this long past its
    # TTL, marked `Cache-Status: ...; fwd=stale; fwd-status=503`.
    stale_if_error_seconds: int = 300
    cache_local_max_entries: int = 5000
    cache_local_ttl: float = 2.0
    # Generation counters may be reused this long; every write waits it out before its
    # 2xx (enterprise/leases.py). 0 reads Redis for every request.
    cache_generation_lease_ms: int = 20

    # Lists and counts.
    pagination_default_limit: int = 20
    pagination_max_limit: int = 100
    count_cap: int = 10000
    count_max_time_ms: int = 200
    cursor_secret: str = ""
    # NDJSON exports: documents per cursor batch and per streamed chunk (memory per export).
    export_batch_size: int = 500

    # Deadlines (seconds) per route class.
    timeout_default: float = 30.0
    timeout_search: float = 5.0
    timeout_reports: float = 120.0

    # Conditional writes.
    require_if_match: bool = False

    # Bodies.
    max_body_bytes: int = 64 * 1024
    compression_min_bytes: int = 1024
    brotli_quality: int = 4
    gzip_level: int = 6
    # Streamed bodies (exports) are compressed on every request and never reused: the
    # fastest levels (on an assignments export br 1 takes 6 ms per 10k documents for a ratio
    # of 0.104, br 4 21 ms for 0.094; gzip 1 15 ms for 0.122, gzip 6 47 ms for 0.100).
    stream_brotli_quality: int = 1
    stream_gzip_level: int = 1

    # Breakers around Redis (cache, write guard) and MongoDB (every repository call):
    # open after this many consecutive failures, try one call again after the reset timeout.
    circuit_breaker_enabled: bool = True
    circuit_breaker_failure_threshold: int = 5
    circuit_breaker_reset_timeout: float = 5.0
    # MongoDB calls in flight this long with none finishing: ping; no answer opens the
    # breaker (a hung server accepts connections and never answers).
    circuit_breaker_stall_seconds: float = 2.0

    # Write guard for servers without atomic single-document updates.
    write_lock_lease_ms: int = 5000
    write_lock_wait_ms: int = 3000
    workers: int = 1

    # Budgets: P95 targets per route class, in milliseconds.
    budgets_ms: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_BUDGETS_MS))

    # Rate limits per API key × route class × method (enterprise/ratelimit.py): rules
    # `ROLE:CLASS:METHOD=LIMIT/WINDOW_S`, the most specific wins. While Redis is down each
    # worker admits RATE_LIMIT_LOCAL_SHARE of every quota (0: 1 / WORKERS).
    rate_limit_enabled: bool = True
    rate_limits: str = DEFAULT_RULES
    rate_limit_local_share: float = 0.0
    # How long a worker may use units it reserved ahead (enterprise/ratelimit.py).
    rate_limit_lease_ms: int = 250

    # Cross-origin browsers: allowed origins (comma-separated, exact `scheme://host[:port]`;
    # empty: no CORS headers at all), credentials, and how long a preflight may be cached.
    cors_origins: str = ""
    cors_allow_credentials: bool = False
    cors_max_age: int = 600
    # Strict-Transport-Security max-age in seconds; 0 (off) unless served over HTTPS only.
    hsts_seconds: int = 0

    log_level: str = "INFO"
    log_json: bool = True
    # One JSON line per request (enterprise/logs.py), written by a thread off the event loop.
    access_log: bool = True

    # SRE instrumentation: Prometheus instruments and /metrics, in-flight counting, and
    # publishing this worker's figures for the others (false: the req/s baseline to
    # compare against; /performance endpoints then speak for the answering worker only).
    metrics_enabled: bool = True
    # A bearer token that may read /metrics only (a Prometheus scrape), besides sre keys.
    metrics_token: str = ""
    # Set by `python -m enterprise serve` for its workers: prometheus-client's multiprocess
    # files and each worker's published figures live here.
    prometheus_multiproc_dir: str = ""
    sre_snapshot_interval_s: float = 1.0

    # Audit trail: how long records are kept (`audit prune` where the server has no TTL
    # index; the declared TTL index, indexes/audit_events.py, keeps the same default), and
    # how old a pending record must be before `audit reconcile` settles it: longer than any
    # write can be in flight (the 30 s default deadline, with room).
    audit_retention_days: int = RETENTION_SECONDS // 86400
    audit_reconcile_grace_s: float = 300.0
    # Tests only (needs ENTERPRISE_DEV=1): kill the worker at this point of every write,
    # "before-write" (intent journaled) or "after-write" (write applied, record pending).
    test_fault_crash: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `environ` (default: the process environment).

        `BUDGET_<CLASS>_MS` overrides one budget, e.g. `BUDGET_SEARCH_MS=250`.
        `CURSOR_SECRET` is required unless `ENTERPRISE_DEV=1`, where a fixed development
        secret is used so that `make run` works out of the box.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in fields(cls):
            if spec.name == "budgets_ms":
                continue
            name = spec.name.upper()
            if name not in env:
                continue
            raw = env[name]
            kind = type(getattr(_DEFAULTS, spec.name))
            try:
                values[spec.name] = _bool(raw) if kind is bool else kind(raw)
            except ValueError as ex:
                raise SettingsError(f"{name}: {ex}") from ex
        budgets = dict(DEFAULT_BUDGETS_MS)
        for route_class in budgets:
            budget = env.get(f"BUDGET_{route_class.upper()}_MS")
            if budget is not None:
                try:
                    budgets[route_class] = float(budget)
                except ValueError as ex:
                    raise SettingsError(f"BUDGET_{route_class.upper()}_MS: {ex}") from ex
        values["budgets_ms"] = budgets
        if not values.get("cursor_secret"):
            if _bool(env.get("ENTERPRISE_DEV", "0")):
                values["cursor_secret"] = "development-only-cursor-secret"
            else:
                raise SettingsError(
                    "CURSOR_SECRET is required (32+ random bytes, e.g. "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`); "
                    "set ENTERPRISE_DEV=1 for a local development secret"
                )
        if values.get("test_fault_crash") and not _bool(env.get("ENTERPRISE_DEV", "0")):
            raise SettingsError("TEST_FAULT_CRASH is for tests only and needs ENTERPRISE_DEV=1")
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Reject combinations that cannot work, with the variable's name."""
        if not 1 <= self.pagination_default_limit <= self.pagination_max_limit:
            raise SettingsError(
                "PAGINATION_DEFAULT_LIMIT must be between 1 and PAGINATION_MAX_LIMIT"
            )
        if self.db_pool_size > self.db_max_pool_size:
            raise SettingsError("DB_POOL_SIZE must not exceed DB_MAX_POOL_SIZE")
        if not 0 <= self.brotli_quality <= 11:
            raise SettingsError("BROTLI_QUALITY must be 0..11")
        if not 1 <= self.gzip_level <= 9:
            raise SettingsError("GZIP_LEVEL must be 1..9")
        if not 0 <= self.stream_brotli_quality <= 11:
            raise SettingsError("STREAM_BROTLI_QUALITY must be 0..11")
        if not 1 <= self.stream_gzip_level <= 9:
            raise SettingsError("STREAM_GZIP_LEVEL must be 1..9")
        if not 0 <= self.cache_generation_lease_ms <= 1000:
            raise SettingsError("CACHE_GENERATION_LEASE_MS must be 0..1000")
        if not 0 <= self.cache_refresh_ahead < 1:
            raise SettingsError("CACHE_REFRESH_AHEAD must be 0..1 (a fraction of the TTL)")
        if self.cache_refresh_concurrency < 1:
            raise SettingsError("CACHE_REFRESH_CONCURRENCY must be at least 1")
        if not 0 <= self.cache_ttl_jitter < 1:
            raise SettingsError("CACHE_TTL_JITTER must be 0..1 (a fraction of the TTL)")
        if self.workers < 1:
            raise SettingsError("WORKERS must be at least 1")
        try:
            Rules.parse(self.rate_limits)
        except ValueError as ex:
            raise SettingsError(f"RATE_LIMITS: {ex}") from ex
        if not 1 <= self.rate_limit_lease_ms <= 10_000:
            raise SettingsError("RATE_LIMIT_LEASE_MS must be 1..10000")
        if not 0 <= self.rate_limit_local_share <= 1:
            raise SettingsError("RATE_LIMIT_LOCAL_SHARE must be 0..1 (0: 1 / WORKERS)")
        if "*" in self.cors_origin_list and self.cors_allow_credentials:
            raise SettingsError(
                "CORS_ORIGINS=* with CORS_ALLOW_CREDENTIALS=true: list the origins instead"
            )
        if self.hsts_seconds < 0:
            raise SettingsError("HSTS_SECONDS must be >= 0")
        if not 0.05 <= self.sre_snapshot_interval_s <= 60:
            raise SettingsError("SRE_SNAPSHOT_INTERVAL_S must be 0.05..60")
        if self.audit_retention_days < 1:
            raise SettingsError("AUDIT_RETENTION_DAYS must be at least 1")
        if self.audit_reconcile_grace_s < 0:
            raise SettingsError("AUDIT_RECONCILE_GRACE_S must not be negative")
        if self.test_fault_crash not in ("", "before-write", "after-write"):
            raise SettingsError("TEST_FAULT_CRASH must be before-write or after-write")

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        return tuple(o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip())

    @property
    def local_rate_share(self) -> float:
        """Each worker's share of a quota while Redis is unavailable."""
        return self.rate_limit_local_share or 1 / self.workers

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some fields changed (tests and the CLI use this)."""
        return replace(self, **changes)


_DEFAULTS = Settings()
