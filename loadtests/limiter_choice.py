"""Our GCRA script vs the `limits` library, per decision, on the real Redis (REDIS_URL).

    .venv/bin/pip install 'limits[async-redis]'   # only for this comparison
    .venv/bin/python loadtests/limiter_choice.py  # prints µs per decision, both ways

Sequential decisions measure one round trip each; 16 concurrent callers show what the
group-commit batching of `enterprise.ratelimit` buys (`limits` has no batching). CPU time
of this process is reported too: it is what a request pays on the server's event loop.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time

import pybreaker
import redis.asyncio

from enterprise.ratelimit import RateLimiter, Rules

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6380/0")
N = 3000


async def ours(concurrency: int) -> tuple[float, float]:
    client = redis.asyncio.from_url(REDIS_URL)
    limiter = RateLimiter(
        client,
        pybreaker.CircuitBreaker(),
        Rules.parse("*:*:*=60000000/60"),
        local_share=1.0,
        namespace=f"choice{time.time_ns()}",
    )

    async def one(i: int) -> None:
        for _ in range(N // concurrency):
            await limiter.allow(f"k{i}", "r", "lists", "GET")

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(i) for i in range(concurrency)))
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    await client.aclose()
    return took / N * 1e6, cpu / N * 1e6


async def library(concurrency: int, implementation: str) -> tuple[float, float]:
    from limits import RateLimitItemPerMinute
    from limits.aio.storage import RedisStorage
    from limits.aio.strategies import SlidingWindowCounterRateLimiter

    uri = "async+" + REDIS_URL
    storage = RedisStorage(uri, implementation=implementation)
    limiter = SlidingWindowCounterRateLimiter(storage)
    item = RateLimitItemPerMinute(60000000)
    prefix = f"choice{time.time_ns()}"

    async def one(i: int) -> None:
        for _ in range(N // concurrency):
            await limiter.hit(item, prefix, f"k{i}", "lists", "GET")

    await limiter.hit(item, prefix, "warm")
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(i) for i in range(concurrency)))
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    return took / N * 1e6, cpu / N * 1e6


async def main() -> None:
    rounds: dict[str, list[tuple[float, float]]] = {}
    for _ in range(5):  # alternate, so a drift of the machine's speed favours neither
        for concurrency in (1, 16):
            rounds.setdefault(f"ours c={concurrency}", []).append(await ours(concurrency))
            for impl in ("redispy", "coredis"):
                name = f"limits/{impl} c={concurrency}"
                rounds.setdefault(name, []).append(await library(concurrency, impl))
    out = sys.stdout
    out.write(f"load average {os.getloadavg()[0]:.1f}; medians of 5 rounds, {N} decisions each\n")
    for name, values in rounds.items():
        wall = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        out.write(f"{name:24s} wall {wall:7.1f} µs/decision   cpu {cpu:7.1f} µs/decision\n")


if __name__ == "__main__":
    asyncio.run(main())
