"""NDJSON export against a bare driver iterating the same cursor, and the worker's memory.

    python loadtests/export_bench.py [--kind assignments] [--rounds 15] [--warmup 1] [--port 18400]
                                     [--workers 1 2] [--server granian]

Run it against a seeded database (MONGODB_DATABASE; the `large` preset for the memory
figure: `python -m enterprise seed --preset large --seed 42`). It picks the organization
with the most clinics and, for each worker count (`--workers`, 1 and 2 by default), starts
the API (that many workers of the server `serve` defaults to, its own session), exports
once on each side unmeasured (`--warmup`), and in each round, in alternating order:

* driver: a bare `AsyncMongoClient` runs the export's own query (same filter, sort,
  projection and batch size) and iterates every document;
* api: `GET /organizations/{id}/{kind}/export` streamed with httpx (which asks for br or gzip)
  and decoded, every line counted.

It prints, per worker count, docs/s of both, their ratio within each round, and the server's
RSS (its process group: the server and its workers) before the first export and its peak
while exporting (sampled every 20 ms from /proc). One export is served by one worker
whatever their number.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient, MongoClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from enterprise.querying import projection  # noqa: E402
from enterprise.server import SERVERS  # noqa: E402
from enterprise.services.exports import KINDS  # noqa: E402
from enterprise.settings import Settings  # noqa: E402


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def rss_mb(pid: int) -> float:
    """Resident memory of the process group led by `pid` (the server and its workers)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pid:
                continue
            status = (entry / "status").read_text()
        except (OSError, ProcessLookupError):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


async def sample_peak(pid: int, stop: asyncio.Event) -> float:
    peak = 0.0
    while not stop.is_set():
        peak = max(peak, rss_mb(pid))
        await asyncio.sleep(0.02)
    return peak


async def driver_docs(settings: Settings, kind: str, organization: Any) -> tuple[int, float]:
    export = KINDS[kind]
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri)
    try:
        began = time.perf_counter()
        cursor = client[settings.mongodb_database][kind].find(
            {"organizationId": organization},
            projection(None, export.spec, extra=export.sort),
            sort=list(export.sort),
            batch_size=settings.export_batch_size,
        )
        count = 0
        async for _ in cursor:
            count += 1
        return count, time.perf_counter() - began
    finally:
        await client.close()


async def api_docs(base: str, key: str, kind: str, organization: Any) -> tuple[int, float]:
    async with httpx.AsyncClient(base_url=base, timeout=300) as http:
        began = time.perf_counter()
        count = 0
        url = f"/api/v1/organizations/{organization}/{kind}/export"
        async with http.stream("GET", url, headers={"Authorization": f"Bearer {key}"}) as resp:
            resp.raise_for_status()
            # Decoded as a client would (httpx asks for br/gzip), counted in C: splitting lines
            # in Python would spend the client's CPU on the cores the server needs.
            async for chunk in resp.aiter_bytes():
                count += chunk.count(b"\n")
        return count, time.perf_counter() - began


def biggest_organization(settings: Settings) -> tuple[Any, int]:
    client: MongoClient[dict[str, Any]] = MongoClient(settings.mongodb_uri)
    try:
        rows = (
            client[settings.mongodb_database]
            .clinics.aggregate([{"$group": {"_id": "$organizationId", "n": {"$sum": 1}}}])
            .to_list()
        )
        best = max(rows, key=lambda row: row["n"])
        return best["_id"], best["n"]
    finally:
        client.close()


async def measure(
    settings: Settings, args: argparse.Namespace, server: int, key: str, organization: Any
) -> None:
    label = f"{args.current_workers}w"
    base = f"http://127.0.0.1:{args.port}"
    async with httpx.AsyncClient(base_url=base) as http:
        for _ in range(300):
            try:
                if (await http.get("/health/ready")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    before = rss_mb(server)
    peak = 0.0
    for _ in range(args.warmup):
        # Unmeasured: the worker's first export pays for its connection pool and first
        # imports. Its memory counts (sampled like the rest).
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_peak(server, stop))
        await api_docs(base, key, args.kind, organization)
        stop.set()
        peak = max(peak, await sampler)
        await driver_docs(settings, args.kind, organization)
    rates: dict[str, list[float]] = {"api": [], "driver": []}
    ratios = []
    for round_ in range(1, args.rounds + 1):
        order = ("api", "driver") if round_ % 2 else ("driver", "api")
        this: dict[str, float] = {}
        for side in order:
            if side == "api":
                stop = asyncio.Event()
                sampler = asyncio.create_task(sample_peak(server, stop))
                count, seconds = await api_docs(base, key, args.kind, organization)
                stop.set()
                peak = max(peak, await sampler)
            else:
                count, seconds = await driver_docs(settings, args.kind, organization)
            this[side] = count / seconds
            rates[side].append(this[side])
            rate = f"{count} docs in {seconds:.2f} s = {this[side]:,.0f}/s"
            say(f"{label} round {round_} {side}: {rate}")
        ratios.append(this["api"] / this["driver"])
    say(
        f"{label} docs/s median: api {statistics.median(rates['api']):,.0f}, driver "
        f"{statistics.median(rates['driver']):,.0f}; api÷driver per round "
        f"{' / '.join(f'{r:.2f}' for r in ratios)}, median {statistics.median(ratios):.2f}\n"
        f"{label} server RSS: {before:.1f} MB before, peak {peak:.1f} MB while exporting "
        f"(+{peak - before:.1f} MB)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=sorted(KINDS), default="assignments")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured exports per side first")
    parser.add_argument("--port", type=int, default=18400)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts")
    parser.add_argument("--server", choices=SERVERS, default="granian", help="what `serve` runs")
    args = parser.parse_args()
    settings = Settings.from_env()
    organization, clinics = biggest_organization(settings)
    say(f"organization {organization}: {clinics} clinics; exporting {args.kind}")
    key = subprocess.run(
        [sys.executable, "-m", "enterprise", "keys", "create", "--name", "export-bench",
         "--role", "platform_admin"],
        check=True, capture_output=True, text=True, cwd=ROOT,
    ).stdout.strip()  # fmt: skip
    for workers in args.workers:
        args.current_workers = workers
        server = subprocess.Popen(
            [sys.executable, "-m", "enterprise", "serve", "--port", str(args.port),
             "--workers", str(workers), "--server", args.server],
            cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            asyncio.run(measure(settings, args, server.pid, key, organization))
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
