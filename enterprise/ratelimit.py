"""Rate limits per API key × route class × method: GCRA in Redis, in-process while it is down.

**Algorithm.** GCRA (the generic cell rate algorithm, a token bucket kept as one timestamp):
a quota of `limit` requests per `window` seconds admits one request every `window / limit`
seconds, with a burst of up to `limit`. Each bucket is one Redis key holding its theoretical
arrival time (TAT, microseconds of Redis's own clock, so every worker agrees on "now").

**Atomic and exact.** One Lua script decides a whole batch: registered once (`SCRIPT LOAD`,
then `EVALSHA`; redis-py reloads it after a Redis restart). Concurrent requests of a worker
share one `EVALSHA` group-commit style (`enterprise/batching.py` explains the shape). Inside
the script buckets are served one after another, so no more than `limit` are ever admitted
per burst, across any number of workers.

**Cheap: reserved credit.** A round trip costs a request more than the rest of a cache hit,
so far from its limit a worker reserves a block of a bucket's units at once and admits the
next requests from that credit without asking (`admit_now`: no await, no I/O). The block
starts at 1 and doubles while the credit is used up within its lease (`RATE_LIMIT_LEASE_MS`),
up to `MAX_BLOCK` and never more than `(remaining - WORKERS × ONE_BY_ONE) / (2 × WORKERS)`:
the last `WORKERS × ONE_BY_ONE` units of a bucket are decided one by one in Redis, so the
count is exact where refusals start. Once a quarter of a block of 4 or more is used, the next
one is reserved in the background, so a busy key's requests find credit instead of waiting for
the round trip; a bucket whose credit ran out before that answer came asks for the next block
as soon as one arrives, until units go unused to the end of a lease. Units unused at the end
of their lease go back to the bucket. A busy key thus costs one round trip per `MAX_BLOCK`
requests (requests that find no credit while a block is on its way wait for it rather than
ask too); the `r` a worker reports is Redis's figure at its last reservation minus what it
admitted since.

**Fallback.** Redis calls go through the Redis breaker the response cache uses. While Redis
is down or the breaker is open, each worker decides alone with the same algorithm in memory,
with a share of every quota: `limit × RATE_LIMIT_LOCAL_SHARE`, by default `1 / WORKERS`
(rounded up, at least 1). N workers then admit about `limit` together when the load balances
evenly, and never more than `N × ceil(limit / N)`. Buckets start afresh in each tier.

`RateLimiter.allow(key_id, role, route_class, method)` is plain async code with no HTTP
types, so the Falcon middleware and a pure-ASGI front can both call it; `admit_now` is its
synchronous part, for a front that answers without awaiting (cache hits): it gives the
answer's RateLimit fields straight away, or says that only `allow` can decide.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pybreaker
from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# KEYS: the buckets. ARGV: per key, emission interval and window (microseconds), units
# wanted, units given back (unused credit). Returns per key: units granted (0: refused),
# remaining, microseconds until the bucket is full again, microseconds until the next unit.
GCRA = """
local now_pair = redis.call('TIME')
local now = tonumber(now_pair[1]) * 1000000 + tonumber(now_pair[2])
local out = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[4 * i - 3])
  local window = tonumber(ARGV[4 * i - 2])
  local want = tonumber(ARGV[4 * i - 1])
  local back = tonumber(ARGV[4 * i])
  local tat = tonumber(redis.call('GET', key) or now) - back * interval
  if tat < now then tat = now end
  local granted = math.min(want, math.floor((now + window - tat) / interval))
  if granted >= 1 then
    tat = tat + granted * interval
  end
  if granted >= 1 or back > 0 then
    local ttl_ms = math.max(1, math.ceil((tat - now) / 1000))
    redis.call('SET', key, string.format('%d', tat), 'PX', ttl_ms)
  end
  if granted >= 1 then
    out[#out + 1] = {granted, math.floor((window - (tat - now)) / interval), tat - now, 0}
  else
    out[#out + 1] = {0, 0, tat - now, tat + interval - window - now}
  end
end
return out
"""
MICRO = 1_000_000
# Units reserved at once at most: one round trip per 1,024 requests of a busy key. A round
# trip costs the worker 150-250 µs of CPU (redis-py, the syscalls; /tmp measurements): at 256
# that is about 1 µs of every hit by arithmetic (the paired bench did not resolve it). A block
# only grows while it is used up within its lease, so only a key sending thousands of requests
# a second per worker gets blocks this big. The next block is asked for once a quarter of one
# is used: the rest is the time its answer has to come back in. (With blocks of 64 and half a
# block left, 1 request in 8 found the credit empty: a round trip takes 3-4 turns of a busy
# event loop.)
MAX_BLOCK = 1024
# The last `WORKERS × ONE_BY_ONE` units of a bucket are decided one by one, in Redis (exact
# where refusals start); blocks stay below half of the rest, shared among the workers.
ONE_BY_ONE = 256


@dataclass(frozen=True, slots=True)
class Quota:
    limit: int
    window_s: int
    # The `RateLimit-Policy` item (draft-ietf-httpapi-ratelimit-headers-10, §3), made once.
    policy: str = field(init=False, repr=False, compare=False)
    policy_field: tuple[bytes, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "policy", f'"default";q={self.limit};w={self.window_s}')
        object.__setattr__(self, "policy_field", (b"ratelimit-policy", self.policy.encode()))


class Decision(NamedTuple):
    """One request's answer. `reset_s`: seconds until the quota is whole again;
    `retry_after_s`: seconds until a refused request would be admitted (0 if admitted);
    `tier`: "redis" or "local" (the fallback)."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    retry_after_s: int
    policy: str
    tier: str

    def fields(self) -> list[tuple[bytes, bytes]]:
        """The draft's two fields of an allowed answer, as ASGI headers."""
        return [
            (b"ratelimit-policy", self.policy.encode()),
            (b"ratelimit", RATELIMIT % (self.remaining, self.reset_s)),
        ]


# The `RateLimit` field (draft-ietf-httpapi-ratelimit-headers-10, §4): remaining, reset.
RATELIMIT = b'"default";r=%d;t=%d'
_ceil = math.ceil


class Later(enum.Enum):
    """`admit_now`'s answer when the decision needs Redis: await `allow`."""

    LATER = "later"


LATER = Later.LATER


# Specific enough for everyone's normal use; `RATE_LIMITS` replaces the whole list.
DEFAULT_RULES = "*:*:GET=6000/60,*:*:HEAD=6000/60,*:*:*=1200/60"


class Rules:
    """`ROLE:CLASS:METHOD=LIMIT/WINDOW_S` rules, comma-separated, `*` matching anything;
    the most specific rule wins (role, then route class, then method, decide ties).

    >>> Rules.parse("*:*:*=1200/60,org_reader:*:GET=600/60").quota("org_reader", "lists", "GET")
    Quota(limit=600, window_s=60)
    """

    def __init__(self, rules: Mapping[tuple[str, str, str], Quota]) -> None:
        self._rules = dict(rules)
        self._resolved: dict[tuple[str, str, str], Quota | None] = {}

    @classmethod
    def parse(cls, text: str) -> Rules:
        rules: dict[tuple[str, str, str], Quota] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            try:
                pattern, _, quota = item.partition("=")
                role, route_class, method = (p.strip() for p in pattern.split(":"))
                limit, window = (int(n) for n in quota.split("/"))
            except ValueError as ex:
                raise ValueError(f"{item!r} is not ROLE:CLASS:METHOD=LIMIT/WINDOW_S") from ex
            if limit < 1 or window < 1:
                raise ValueError(f"{item!r} needs a limit and window >= 1")
            if limit > window * MICRO:
                # The buckets count microseconds (Redis's TIME): a finer rate would be kept
                # as one per microsecond while RateLimit-Policy announced the larger quota.
                raise ValueError(f"{item!r} is above 1,000,000 per second, the finest rate kept")
            rules[(role, route_class, method.upper())] = Quota(limit, window)
        return cls(rules)

    def quota(self, role: str, route_class: str, method: str) -> Quota | None:
        """The quota of this request, or None when no rule covers it (no limit)."""
        wanted = (role, route_class, method)
        if wanted in self._resolved:
            return self._resolved[wanted]
        best: tuple[tuple[bool, bool, bool], Quota] | None = None
        for (r, c, m), quota in self._rules.items():
            if r not in ("*", role) or c not in ("*", route_class) or m not in ("*", method):
                continue
            rank = (r != "*", c != "*", m != "*")
            if best is None or rank > best[0]:
                best = (rank, quota)
        found = best[1] if best else None
        if len(self._resolved) < 10_000:  # roles × classes × methods: a few hundred at most
            self._resolved[wanted] = found
        return found


class LocalBuckets:
    """The same GCRA in memory, for the fallback: TATs of recently seen buckets (LRU)."""

    def __init__(
        self, share: float, *, max_buckets: int = 100_000, clock: Callable[[], float] = time.time
    ) -> None:
        self._share = share
        self._tats: OrderedDict[str, float] = OrderedDict()
        self._max = max_buckets
        self._clock = clock

    def share_of(self, quota: Quota) -> int:
        return max(1, math.ceil(quota.limit * self._share))

    def decide(self, key: str, quota: Quota) -> Decision:
        limit = self.share_of(quota)
        now = self._clock()
        interval = quota.window_s / limit
        tat = max(self._tats.get(key, now), now)
        new_tat = tat + interval
        wait = new_tat - quota.window_s - now
        policy = Quota(limit, quota.window_s).policy
        if wait > 0:
            return Decision(False, limit, 0, math.ceil(tat - now), math.ceil(wait), policy, "local")
        self._tats[key] = new_tat
        self._tats.move_to_end(key)
        if len(self._tats) > self._max:
            self._tats.popitem(last=False)
        remaining = math.floor((quota.window_s - (new_tat - now)) / interval + 1e-9)
        return Decision(True, limit, remaining, math.ceil(new_tat - now), 0, policy, "local")


class _Credit:
    """A worker's reserved units of one bucket."""

    __slots__ = (
        "asked",
        "block",
        "eager",
        "expires",
        "key",
        "pending",
        "quota",
        "refill_at",
        "remaining",
        "reset_at",
        "timer",
        "units",
    )

    def __init__(self, key: str, quota: Quota) -> None:
        self.key = key  # the bucket's Redis key
        self.quota = quota
        self.units = 0  # reserved, not yet used
        self.refill_at = -1  # reserve the next block in the background at this many units
        # A reservation ahead came too late (the credit ran out while it was on its way):
        # from then on the next block is asked for as soon as one arrives, until units go
        # unused to the end of a lease (the key is no longer that busy).
        self.eager = False
        self.expires = 0.0
        self.remaining = 0  # Redis's figure at the last reservation
        self.reset_at = 0.0
        self.block = 1  # units to reserve next time
        self.pending: asyncio.Future[None] | None = None  # resolved when the reservation is back
        self.asked = 0  # units that reservation asked for
        self.timer: asyncio.TimerHandle | None = None  # the end of the lease of the units


class _Ask(NamedTuple):
    want: int
    back: int
    lead: bool  # the bucket's one block reservation in flight (the others ask for 1)
    credit: _Credit
    # The request waiting for this answer; None: a reservation made ahead (all units go to
    # the credit) or unused units given back (`want` 0).
    future: asyncio.Future[Decision] | None


class RateLimiter:
    """Decides whether a request may proceed. See the module docstring.

    Args:
        redis: the shared client; None decides in-process only.
        breaker: the Redis breaker (shared with the response cache).
        rules: quotas per role × route class × method.
        local_share: each worker's share of a quota while Redis is unavailable.
        workers: how many workers share the buckets (reserved blocks stay below
            `remaining / (2 × workers)`).
        lease_s: how long reserved units may be used before they go back.
        max_block: units reserved at once at most.
        namespace: keeps deployments (and test databases) sharing one Redis apart.
    """

    def __init__(
        self,
        redis: Redis | None,
        breaker: pybreaker.CircuitBreaker,
        rules: Rules,
        *,
        local_share: float,
        workers: int = 1,
        lease_s: float = 0.25,
        max_block: int = MAX_BLOCK,
        namespace: str = "enterprise",
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._breaker = breaker
        self._rules = rules
        self._prefix = f"rl:{namespace}:"
        self._script: Any = redis.register_script(GCRA) if redis is not None else None
        self._workers = workers
        self._lease = lease_s
        self._max_block = max_block
        self._monotonic = monotonic
        # Per (key id, route class, method): one dictionary lookup finds a request's bucket,
        # quota and credit. (A key's role never changes: keys are created and revoked, never
        # edited, so the role that chose the quota need not be part of the lookup.)
        self._credits: dict[tuple[str, str, str], _Credit] = {}
        self._tail = workers * ONE_BY_ONE
        self.local = LocalBuckets(local_share, clock=clock)
        self._waiting: list[_Ask] = []
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False
        self.calls = 0  # EVALSHA round trips
        self.decisions = 0

    def admit_now(
        self, key_id: str, role: str, route_class: str, method: str
    ) -> list[tuple[bytes, bytes]] | Later:
        """For a front that answers without awaiting (cache hits): the RateLimit fields of a
        request admitted from this worker's credit, [] when no rule limits it, or `LATER`
        when only `allow` can decide (nothing was consumed then).

        Every cached GET comes here: `_take` is written out in place (a call less), and the
        `RateLimit` field is the one thing made per request."""
        credit = self._credits.get((key_id, route_class, method))
        if credit is None:
            return [] if self._rules.quota(role, route_class, method) is None else LATER
        now = self._monotonic()
        units = credit.units
        if units <= 0 or now >= credit.expires:
            self._ran_out(credit)
            return LATER
        credit.units = units = units - 1
        self.decisions += 1
        if units <= credit.refill_at and credit.pending is None:
            self._reserve_ahead(credit)
        reset = credit.reset_at - now
        value = RATELIMIT % (credit.remaining + units, _ceil(reset) if reset > 0 else 0)
        return [credit.quota.policy_field, (b"ratelimit", value)]

    def _take(self, credit: _Credit, now: float) -> bool:
        """One unit from the credit, if it has one under its lease (`admit_now` has its
        own copy of this)."""
        if credit.units <= 0 or now >= credit.expires:
            self._ran_out(credit)
            return False
        self.decisions += 1
        credit.units -= 1
        if credit.units <= credit.refill_at and credit.pending is None:
            self._reserve_ahead(credit)
        return True

    @staticmethod
    def _ran_out(credit: _Credit) -> None:
        if credit.pending is not None and credit.asked > 1 and credit.refill_at >= 0:
            credit.eager = True  # ran out with the block reserved ahead still on its way

    def _from_credit(self, credit: _Credit) -> Decision | None:
        now = self._monotonic()
        if not self._take(credit, now):
            return None
        return Decision(
            True,
            credit.quota.limit,
            credit.remaining + credit.units,
            max(0, math.ceil(credit.reset_at - now)),
            0,
            credit.quota.policy,
            "redis",
        )

    async def allow(self, key_id: str, role: str, route_class: str, method: str) -> Decision | None:
        """The decision for one request, or None when no rule limits it."""
        quota = self._rules.quota(role, route_class, method)
        if quota is None:
            return None
        bucket = (key_id, route_class, method)
        credit = self._credits.get(bucket)
        if credit is None:
            key = f"{self._prefix}{key_id}:{route_class}:{method}"
            if self._script is None:
                self.decisions += 1
                return self.local.decide(key, quota)
            if len(self._credits) >= 100_000:  # forget idle buckets (their units expired)
                now = self._monotonic()
                self._credits = {k: c for k, c in self._credits.items() if c.expires > now}
            credit = self._credits[bucket] = _Credit(key, quota)
        decision = self._from_credit(credit)
        if decision is not None:
            return decision
        while credit.pending is not None and credit.asked > 1:
            # A block is on its way: wait for it rather than ask for a unit of one's own.
            await asyncio.shield(credit.pending)
            decision = self._from_credit(credit)
            if decision is not None:
                return decision
        self.decisions += 1
        back = credit.units  # expired: they go back with this reservation
        credit.units = 0
        loop = asyncio.get_running_loop()
        lead = credit.pending is None
        if lead:
            if back:  # the last block outlived its lease: ask for less
                credit.block = max(1, credit.block // 2)
            credit.asked = want = self._block_for(credit)
            credit.pending = loop.create_future()
        else:
            want = 1
        future: asyncio.Future[Decision] = loop.create_future()
        self._ask(_Ask(want, back, lead, credit, future))
        return await future

    def _block_for(self, credit: _Credit) -> int:
        # The last `workers × ONE_BY_ONE` units are decided one by one, in Redis.
        share = (credit.remaining - self._tail) // (2 * self._workers)
        return max(1, min(credit.block, share, self._max_block))

    def _reserve_ahead(self, credit: _Credit) -> None:
        """A quarter of the block is used: reserve the next one now, while the rest admits."""
        if self._closed:  # shutting down: the call would outlive the Redis client
            return
        want = self._block_for(credit)
        if want < 2:  # near the limit: the units are decided one by one
            credit.refill_at = -1
            return
        credit.asked = want
        credit.pending = asyncio.get_running_loop().create_future()
        self._ask(_Ask(want, 0, True, credit, None))

    def _ask(self, ask: _Ask) -> None:
        self._waiting.append(ask)
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    def _lease_ends(self, credit: _Credit) -> None:
        """Have `_give_back` called at the end of the units' lease (one timer per bucket)."""
        if credit.timer is None and credit.units > 0 and not self._closed:
            delay = max(0.0, credit.expires - self._monotonic())
            credit.timer = asyncio.get_running_loop().call_later(delay, self._give_back, credit)

    def _give_back(self, credit: _Credit) -> None:
        """At the end of a lease, unused units go back (another worker may need them)."""
        credit.timer = None
        if self._closed or credit.units == 0 or credit.pending is not None:
            return  # (a reservation in flight: its answer starts the next lease)
        if self._monotonic() < credit.expires:  # a later reservation extended the lease
            self._lease_ends(credit)
            return
        back, credit.units = credit.units, 0
        credit.block = max(1, credit.block // 2)
        credit.eager = False
        self._ask(_Ask(0, back, False, credit, None))

    async def _flush(self) -> None:
        try:
            while self._waiting:
                await asyncio.sleep(0)  # let requests that are already runnable join
                batch, self._waiting = self._waiting, []
                await self._decide(batch)
        finally:
            self._flusher = None

    async def _decide(self, batch: list[_Ask]) -> None:
        keys = [ask.credit.key for ask in batch]
        args: list[int] = []
        for ask in batch:
            quota = ask.credit.quota
            window = quota.window_s * MICRO
            args += (max(1, window // quota.limit), window, ask.want, ask.back)
        self.calls += 1
        try:
            with self._breaker.calling():
                rows = await self._script(keys=keys, args=args)
        except pybreaker.CircuitBreakerError:
            rows = None
        except (RedisError, OSError) as ex:
            logger.warning("rate limit: Redis call failed, deciding in-process: %s", ex)
            rows = None
        except Exception:  # never leave a request without an answer; say why
            logger.exception("rate limit: unexpected failure, deciding in-process")
            rows = None
        now = self._monotonic()
        for index, ask in enumerate(batch):
            credit = ask.credit
            if ask.lead and credit.pending is not None:
                credit.pending.set_result(None)  # after this loop: followers find the units
                credit.pending = None
            if ask.want == 0:  # units given back: nothing to decide
                continue
            if rows is None:
                self._lease_ends(credit)
                if ask.future is not None and not ask.future.done():
                    ask.future.set_result(self.local.decide(credit.key, credit.quota))
                continue
            granted, remaining, full_us, wait_us = (int(v) for v in rows[index])
            # The asking request takes one unit (unless it is gone: its deadline ended).
            taken = 1 if granted and ask.future is not None and not ask.future.done() else 0
            if granted:
                if ask.lead and granted == ask.want == credit.block and not ask.back:
                    # used up within its lease: double it
                    credit.block = min(2 * credit.block, self._max_block)
                credit.units += granted - taken
                credit.expires = now + self._lease
                credit.remaining = remaining
                credit.reset_at = now + full_us / MICRO
                if ask.lead:
                    if granted < 4:
                        credit.refill_at = -1
                    else:
                        credit.refill_at = granted - 1 if credit.eager else granted * 3 // 4
            self._lease_ends(credit)
            if ask.future is None or ask.future.done():
                continue
            ask.future.set_result(
                Decision(
                    granted > 0,
                    credit.quota.limit,
                    remaining + credit.units if granted else 0,
                    -(-full_us // MICRO),
                    -(-wait_us // MICRO),
                    credit.quota.policy,
                    "redis",
                )
            )

    async def aclose(self) -> None:
        """At shutdown: the reservations in flight finish; no lease ends or reservations
        ahead any more (they would outlive the Redis client)."""
        self._closed = True
        if self._flusher is not None:
            await self._flusher
        for credit in self._credits.values():
            if credit.timer is not None:
                credit.timer.cancel()
                credit.timer = None

    def snapshot(self) -> dict[str, Any]:
        return {"decisions": self.decisions, "redisCalls": self.calls}
