"""Two-tier response cache with O(1) invalidation through generation counters.

* Keys embed the generations of what a response depends on (`clinics`, `clinics:<org>`,
  `clinics#<id>` …). A write `INCR`s its generations, so older keys are never read again and
  simply expire by TTL: no SCAN, no KEYS, no fan-out.
* An in-process TTL-LRU sits in front of Redis. When Redis fails (its breaker opens) the
  service keeps going on the in-process tier alone, keyed by this worker's own generations.
  A worker then sees its own writes at once; other workers' writes become visible when the
  degraded entry expires (`CACHE_LOCAL_TTL`, 2 s by default). When Redis answers again,
  the worker bumps a global epoch, so nothing cached before or during the outage is served.
* Entries store the serialised body with its ETag and headers, and its br and gzip forms
  made once when it is stored: a hit does no JSON and no compression work.
* Entries outlive their TTL by the stale windows: past the TTL an entry is served while one
  background refresh per worker replaces it (stale-while-revalidate), and while MongoDB
  fails (stale-if-error). TTLs are jittered so entries stored together expire apart.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import struct
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
import pybreaker
from redis.asyncio import Redis
from redis.exceptions import RedisError

from enterprise.batching import BatchedReader
from enterprise.leases import GenerationLeases

logger = logging.getLogger(__name__)

T = TypeVar("T")
_HEADER = struct.Struct("!I")


@dataclass(slots=True)
class Entry:
    body: bytes
    etag: str | None
    content_type: str
    headers: list[tuple[str, str]]
    stored_at: float
    ttl: float
    # Content coding ("br", "gzip") -> the body in that coding, made once when stored.
    forms: dict[str, bytes] = field(default_factory=dict)
    # Not stored: what the hot path made of it, per coding (middleware/hot_path.py).
    prepared: dict[str | None, Any] = field(default_factory=dict)
    # Not stored: when a hit asks this worker to refresh it ahead of its expiry, drawn at
    # random in the TTL's last `refresh_ahead` fraction when this worker keeps it
    # (`ResponseCache._draw_refresh`).
    refresh_at: float = math.inf

    def dump(self) -> bytes:
        codings = list(self.forms)
        meta = orjson.dumps(
            [
                self.etag,
                self.content_type,
                self.headers,
                self.stored_at,
                self.ttl,
                [[coding, len(self.forms[coding])] for coding in codings],
            ]
        )
        return b"".join(
            [_HEADER.pack(len(meta)), meta, *(self.forms[c] for c in codings), self.body]
        )

    @classmethod
    def load(cls, raw: bytes) -> Entry:
        (size,) = _HEADER.unpack_from(raw)
        etag, content_type, headers, stored_at, ttl, sizes = orjson.loads(raw[4 : 4 + size])
        at = 4 + size
        forms = {}
        for coding, length in sizes:
            forms[coding] = raw[at : at + length]
            at += length
        return cls(raw[at:], etag, content_type, [tuple(h) for h in headers], stored_at, ttl, forms)


class LocalLRU:
    """A bounded, TTL-aware LRU of entries (the in-process tier)."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._items: OrderedDict[str, tuple[float, Entry]] = OrderedDict()
        self.evictions = 0  # entries pushed out by newer ones before they expired

    def get(self, key: str, now: float) -> Entry | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, entry = item
        if now >= expires:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return entry

    def put(self, key: str, entry: Entry, expires: float) -> None:
        self._items[key] = (expires, entry)
        self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)
            self.evictions += 1

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class CacheStats:
    hits: int = 0
    local_hits: int = 0
    misses: int = 0
    stale: int = 0
    errors: int = 0
    stores: int = 0
    coalesced: int = 0
    degraded_since: float | None = None
    extra: dict[str, int] = field(default_factory=dict)
    # (resource kind, outcome hit|stale|miss, tier local|redis|none) -> lookups
    lookups: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        served = self.hits + self.misses + self.stale
        return {
            "hits": self.hits,
            "localHits": self.local_hits,
            "misses": self.misses,
            "stale": self.stale,
            "errors": self.errors,
            "stores": self.stores,
            "coalesced": self.coalesced,
            "hitRate": round((self.hits + self.stale) / served, 4) if served else None,
            "degraded": self.degraded_since is not None,
        }


class ResponseCache:
    """Generations, the two tiers, single-flight bookkeeping and counters."""

    def __init__(
        self,
        redis: Redis | None,
        breaker: pybreaker.CircuitBreaker,
        *,
        enabled: bool = True,
        local_max_entries: int = 5000,
        degraded_ttl: float = 2.0,
        stale_seconds: float = 30.0,
        stale_if_error_seconds: float = 0.0,
        ttl_jitter: float = 0.0,
        refresh_ahead: float = 0.0,
        clock: Callable[[], float] = time.time,
        namespace: str = "enterprise",
        generation_lease_s: float = 0.0,
    ) -> None:
        self.enabled = enabled
        # Several deployments (or test databases) may share one Redis.
        self._gen = f"gen:{namespace}:"
        # The entry layout's version is part of the key: workers of an older layout (a
        # rolling deploy) never read an entry they cannot parse, nor write one we cannot.
        self._entry = f"cache:v2:{namespace}:"
        self._epoch = f"{self._gen}~epoch"
        self._sequence = f"{self._gen}~seq"  # every write increments it last (leases.py)
        self._redis = redis
        self._breaker = breaker
        self._local = LocalLRU(local_max_entries)
        # Route -> the last entry stored or read for it, whatever its generations: when Redis
        # is down too, keys are made of local generations and no longer find what was cached
        # under Redis's, yet stale-if-error may still answer with it.
        self._last_known = LocalLRU(local_max_entries)
        self._local_generations: dict[str, int] = {}
        self._degraded_ttl = degraded_ttl
        self.stale_seconds = stale_seconds
        self.stale_if_error_seconds = stale_if_error_seconds
        # An entry is kept this long past its TTL: for either stale window.
        self._retained = max(stale_seconds, stale_if_error_seconds)
        self._ttl_jitter = ttl_jitter
        self._refresh_ahead = refresh_ahead
        self._clock = clock
        self._inflight: dict[str, asyncio.Future[Entry | None]] = {}
        self._needs_epoch_bump = False
        self.stats = CacheStats()
        self._reader = BatchedReader(self._mget)
        self._leases = GenerationLeases(self._reader, self._sequence, generation_lease_s)

    # -- Redis, behind the breaker -------------------------------------------------------

    async def _redis_call(self, call: Callable[[Redis], Awaitable[T]]) -> T | None:
        """Run one Redis call; None when Redis is down or its breaker is open."""
        if self._redis is None:
            return None
        try:
            with self._breaker.calling():
                if self.stats.degraded_since is not None:
                    # Back from an outage: retire what was cached before it *first*. A read
                    # sent before the epoch moves would return the old generations, and with
                    # them entries older than writes acknowledged during the outage.
                    await self._recover()
                result = await call(self._redis)
        except pybreaker.CircuitBreakerError:
            self._enter_degraded()
            return None
        except (RedisError, OSError) as ex:
            self.stats.errors += 1
            self._enter_degraded()
            logger.warning("cache: Redis call failed, using the in-process tier: %s", ex)
            return None
        return result

    def _enter_degraded(self) -> None:
        if self.stats.degraded_since is None:
            self.stats.degraded_since = self._clock()
            self._needs_epoch_bump = True

    async def _recover(self) -> None:
        assert self._redis is not None
        if self._needs_epoch_bump:
            # Writes made anywhere during the outage were not announced: retire every key
            # cached before now.
            await self._move_epoch(self._redis)
            self._needs_epoch_bump = False
        logger.warning(
            "cache: Redis is back after %.1f s", self._clock() - (self.stats.degraded_since or 0)
        )
        self.stats.degraded_since = None

    async def _move_epoch(self, r: Redis) -> list[Any]:
        """Retire every entry cached so far, in every worker: the epoch is part of every
        key. The write sequence moves with it (both or neither), so no worker keeps using
        generations it read before."""
        async with r.pipeline(transaction=True) as pipe:
            pipe.incr(self._epoch)
            pipe.incr(self._sequence)
            return list(await pipe.execute())

    async def retire_all(self) -> bool:
        """For operators, after data changed outside the API (a restore, a manual fix): no
        worker serves an entry cached before this call once its lease (`lease_s`) has
        passed. False when Redis is unavailable (then nothing was retired)."""
        moved = await self._redis_call(self._move_epoch)
        self._leases.forget()
        return moved is not None

    async def _mget(self, keys: list[str]) -> list[Any] | None:
        return await self._redis_call(lambda r: r.mget(keys))

    @property
    def degraded(self) -> bool:
        return self._redis is None or self.stats.degraded_since is not None

    # -- generations ------------------------------------------------------------------

    def generation_keys(self, names: Sequence[str]) -> tuple[str, ...]:
        """The Redis keys whose values make up the key material for `names`."""
        return (self._epoch, *[self._gen + name for name in names])

    def leased(self, keys: tuple[str, ...]) -> str | None:
        """The key material for `keys` from the generation lease, with no await (most
        requests); None: ask `generations`."""
        joined = self._leases.cached(keys)
        return None if joined is None else "r:" + joined

    async def generations(self, names: Sequence[str], keys: tuple[str, ...]) -> str:
        """The key material for `names` (whose keys are `keys`) when `leased` had none:
        Redis generations, or local ones when degraded."""
        leased = await self._leases.after_renewal(keys)
        if leased is not None:
            return "r:" + leased
        values = await self._leases.read(keys)
        if values is None:
            return "l:" + ".".join(str(self._local_generations.get(n, 0)) for n in names)
        found = [v for v in values if v is not None]
        if len(found) < len(values) or self._leases.sequence_missing:
            seed = str(time.time_ns() // 1000)
            missing = [k for k, v in zip(keys, values, strict=True) if v is None]
            if self._leases.sequence_missing:
                missing.append(self._sequence)

            async def initialise(r: Redis) -> list[Any]:
                async with r.pipeline(transaction=False) as pipe:
                    for key in missing:
                        pipe.set(key, seed, nx=True)
                    pipe.mget(keys)
                    return list(await pipe.execute())

            result = await self._redis_call(initialise)
            if result is None:
                return "l:" + ".".join(str(self._local_generations.get(n, 0)) for n in names)
            found = [_text(v) for v in result[-1]]
        return "r:" + ".".join(found)

    async def bump(self, names: Sequence[str]) -> None:
        """Invalidate everything that depends on `names`: O(1) per name, one round trip.

        Returns once no worker can still use a generation read before this call (the
        lease commit wait), so the caller may acknowledge the write.
        """
        for name in names:
            self._local_generations[name] = self._local_generations.get(name, 0) + 1
        if self._redis is None:
            return
        seed = str(time.time_ns() // 1000)

        async def incr(r: Redis) -> list[Any]:
            # MULTI/EXEC: all or nothing. Lease renewals read only the sequence, so new
            # generations without a new sequence would go unseen until the next write.
            async with r.pipeline(transaction=True) as pipe:
                for name in names:
                    pipe.set(self._gen + name, seed, nx=True)
                    pipe.incr(self._gen + name)
                pipe.set(self._sequence, seed, nx=True)
                pipe.incr(self._sequence)
                return list(await pipe.execute())

        if await self._redis_call(incr) is None:
            logger.warning("cache: could not announce a write to %s; degraded freshness", names)
        await self._leases.commit_wait()

    # -- entries ----------------------------------------------------------------------

    def get_local(self, key: str) -> Entry | None:
        """The in-process tier alone: no await, so callers can act on the answer atomically."""
        if not self.enabled:
            return None
        entry = self._local.get(key, self._clock())
        if entry is not None:
            self.stats.local_hits += 1
        return entry

    async def get_remote(self, key: str) -> Entry | None:
        """Redis alone (for a key the in-process tier lacks); the entry is then kept in process."""
        entry = await self._load_remote(key)
        if entry is not None:
            self._keep(key, entry)
        return entry

    async def refreshed_elsewhere(self, key: str) -> Entry | None:
        """For a background refresh of `key`: the entry in Redis if it was stored after the
        one this worker holds (another worker refreshed the key first), then kept in process
        in its place; None when this worker must recompute it (it holds none, Redis has none
        newer, or Redis is out of reach)."""
        held = self._local.get(key, self._clock())
        if held is None:
            return None
        entry = await self._load_remote(key)
        if entry is None or entry.stored_at <= held.stored_at:
            return None
        self._keep(key, entry)
        return entry

    async def _load_remote(self, key: str) -> Entry | None:
        if not self.enabled or key.startswith("l:") or self.degraded and self._redis is None:
            return None
        raw = await self._redis_call(lambda r: r.get(self._entry + key))
        return Entry.load(raw) if isinstance(raw, bytes) else None

    def _keep(self, key: str, entry: Entry) -> None:
        now = self._clock()
        self._draw_refresh(entry)
        self._local.put(
            key, entry, min(now + entry.ttl, entry.stored_at + entry.ttl) + self._retained
        )

    async def put(self, key: str, entry: Entry) -> None:
        if not self.enabled:
            return
        self.stats.stores += 1
        self._draw_refresh(entry)
        if key.startswith("l:"):
            self._local.put(key, entry, entry.stored_at + min(entry.ttl, self._degraded_ttl))
            return
        self._local.put(key, entry, entry.stored_at + entry.ttl + self._retained)
        ttl_ms = int((entry.ttl + self._retained) * 1000)
        await self._redis_call(lambda r: r.set(self._entry + key, entry.dump(), px=ttl_ms))

    def _draw_refresh(self, entry: Entry) -> None:
        """Choose when a hit asks this worker to refresh `entry`: at a point drawn at random
        in the last `refresh_ahead` fraction of its TTL, not at a fixed one. Entries stored
        together (a warm-up, a write) then come due apart, and the workers holding one entry
        come to it one after another: the first recomputes it, the others find its newer
        entry in Redis and take it (`refreshed_elsewhere`). At a fixed point every worker
        reached the same entry together, so each recomputed it."""
        entry.refresh_at = entry.stored_at + entry.ttl * (
            1.0 - self._refresh_ahead * random.random()
        )

    def remember(self, route: str, entry: Entry) -> None:
        """Keep `entry` as the last answer to `route`, for stale-if-error."""
        if route:
            self._last_known.put(
                route, entry, entry.stored_at + entry.ttl + self.stale_if_error_seconds
            )

    def last_known(self, route: str) -> Entry | None:
        """The last answer to `route` still within its stale-if-error window."""
        return self._last_known.get(route, self._clock()) if route else None

    def now(self) -> float:
        return self._clock()

    def record_lookup(self, kind: str, outcome: str, tier: str) -> None:
        """Count one lookup of a `kind` of resource: `outcome` hit, stale or miss, served
        by `tier` (local, redis; none for a miss)."""
        stats = self.stats
        if outcome == "hit":
            stats.hits += 1
        elif outcome == "stale":
            stats.stale += 1
        else:
            stats.misses += 1
        key = (kind, outcome, tier)
        stats.lookups[key] = stats.lookups.get(key, 0) + 1

    def entry(
        self,
        *,
        body: bytes,
        etag: str | None,
        content_type: str,
        headers: list[tuple[str, str]],
        ttl: float,
        forms: dict[str, bytes] | None = None,
    ) -> Entry:
        if self._ttl_jitter:
            ttl *= 1.0 - random.random() * self._ttl_jitter
        return Entry(body, etag, content_type, headers, self._clock(), ttl, forms or {})

    # -- single flight ----------------------------------------------------------------

    def lead(self, key: str) -> asyncio.Future[Entry | None] | None:
        """Become the one request computing `key`; returns the leader's future otherwise."""
        future = self._inflight.get(key)
        if future is not None:
            self.stats.coalesced += 1
            return future
        self._inflight[key] = asyncio.get_running_loop().create_future()
        return None

    def finish(self, key: str, entry: Entry | None) -> None:
        future = self._inflight.pop(key, None)
        if future is not None and not future.done():
            future.set_result(entry)

    async def aclose(self) -> None:
        """Finish background Redis work before the client is closed."""
        await self._reader.aclose()

    def snapshot(self) -> dict[str, Any]:
        return {
            **self.stats.as_dict(),
            "localEntries": len(self._local),
            "localEvictions": self._local.evictions,
            "inflight": len(self._inflight),
            "generationReads": self._reader.reads,
            "generationRequests": self._reader.requests,
            "generationLeaseHits": self._leases.hits,
            "generationLeaseLapses": self._leases.lapses,
            "generationLeaseRenewals": self._leases.renewals,
        }

    def lookups(self) -> list[dict[str, Any]]:
        """Lookups per resource kind, outcome and tier, for the SRE endpoints."""
        return [
            {"kind": kind, "outcome": outcome, "tier": tier, "count": count}
            for (kind, outcome, tier), count in sorted(self.stats.lookups.items())
        ]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
