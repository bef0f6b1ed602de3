"""(c) The floor: the same MongoDB reads as the API, straight from a bare `AsyncMongoClient`.

Runs CONCURRENCY asyncio workers for DURATION seconds (after an unrecorded warm-up), each
issuing the read the API issues for one request, rotating through the same ids as the wrk
run, and prints one `DRIVER_JSON {...}` line with req/s and P50/P95/P99 in ms (exact
percentiles of every recorded latency).

* `item`: `find_one({"_id": id}, projection)` with the projection `GET /api/v1/clinics/{id}`
  sends (all clinic fields plus `version`).
* `list`: `find({"organizationId": org}, projection, sort=[("nameKey", 1), ("_id", 1)],
  limit=21)` as `GET /api/v1/organizations/{org}/clinics?limit=20&fields=name,code,status`
  sends it (limit + 1 to learn whether there is a next page).

The projections and sort are computed with the app's own pure functions, so they cannot
drift from what the API sends; nothing else of the app runs. The client is created like the
app's (same pool sizes, tz_aware), with uvloop as under granian/uvicorn.

    .venv/bin/python loadtests/bare_driver.py item --ids clinic_ids.txt -c 16 -d 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bson import ObjectId
from pymongo import AsyncMongoClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from enterprise.cursor import full_sort  # noqa: E402
from enterprise.querying import parse_fields, projection  # noqa: E402
from enterprise.services.clinics import BY_NAME, SPEC  # noqa: E402
from enterprise.settings import Settings  # noqa: E402

ITEM_PROJECTION = projection(None, SPEC, extra=(("version", 1),))
LIST_SORT = full_sort(BY_NAME)
LIST_PROJECTION = projection(parse_fields("name,code,status", SPEC), SPEC, extra=LIST_SORT)
LIST_LIMIT = 20


def percentile(ordered: list[float], share: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings.from_env()
    ids = [ObjectId(line) for line in args.id_list]
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongodb_uri,
        minPoolSize=settings.db_pool_size,
        maxPoolSize=settings.db_max_pool_size,
        tz_aware=True,
        appname="bare-driver-bench",
    )
    collection = client[settings.mongodb_database]["clinics"]

    async def item(document_id: ObjectId) -> None:
        document = await collection.find_one({"_id": document_id}, ITEM_PROJECTION)
        assert document is not None, document_id

    async def listing(organization_id: ObjectId) -> None:
        cursor = collection.find(
            {"organizationId": organization_id},
            LIST_PROJECTION,
            sort=list(LIST_SORT),
            limit=LIST_LIMIT + 1,
        )
        await cursor.to_list(LIST_LIMIT + 1)

    operation = item if args.mode == "item" else listing
    latencies: list[float] = []
    recording = False
    stop_at = 0.0

    # One rotation shared by every worker, from the first id, exactly as wrk -t1 with
    # loadtests/wrk/bench.lua walks its paths: both sides then send the same finds in the same
    # order. (FerretDB's cost of an `_id` lookup depends on where the document lies, so
    # differently spread sequences would not be the same work.)
    position = -1

    async def worker() -> None:
        nonlocal position
        while time.perf_counter() < stop_at:
            position = (position + 1) % len(ids)
            started = time.perf_counter()
            await operation(ids[position])
            if recording:
                latencies.append((time.perf_counter() - started) * 1000)

    try:
        await client.admin.command("ping")
        if args.warmup > 0:
            stop_at = time.perf_counter() + args.warmup
            await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        recording = True
        position = -1  # the measured run starts over, as a new wrk run does
        cpu_began = time.process_time()
        began = time.perf_counter()
        stop_at = began + args.duration
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        seconds = time.perf_counter() - began
        cpu_seconds = time.process_time() - cpu_began
    finally:
        await client.close()
    ordered = sorted(latencies)
    return {
        "label": args.label or f"driver-{args.mode}",
        "round": args.round,
        "requests": len(ordered),
        "seconds": round(seconds, 3),
        "rps": round(len(ordered) / seconds, 1),
        "p50_ms": round(percentile(ordered, 0.50), 3),
        "p75_ms": round(percentile(ordered, 0.75), 3),
        "p90_ms": round(percentile(ordered, 0.90), 3),
        "p95_ms": round(percentile(ordered, 0.95), 3),
        "p99_ms": round(percentile(ordered, 0.99), 3),
        "max_ms": round(ordered[-1], 3) if ordered else None,
        "mean_ms": round(statistics.fmean(ordered), 3) if ordered else None,
        "cpu_ms_per_req": round(cpu_seconds * 1000 / max(len(ordered), 1), 3),
        "errors": {},
        "load1": round(os.getloadavg()[0], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("item", "list"))
    parser.add_argument(
        "--ids", required=True, help="file: one clinic id (item) or organization id (list) per line"
    )
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    parser.add_argument("-d", "--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--label", default="")
    parser.add_argument("--round", type=int, default=0)
    parser.add_argument("--out", help="append the JSON line to this file too")
    parser.add_argument("--no-uvloop", action="store_true")
    args = parser.parse_args()
    args.id_list = Path(args.ids).read_text().split()
    if not args.no_uvloop:
        import uvloop

        uvloop.install()
    result = asyncio.run(run(args))
    line = json.dumps(result)
    sys.stdout.write("DRIVER_JSON " + line + "\n")
    if args.out:
        with open(args.out, "a") as handle:
            handle.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
