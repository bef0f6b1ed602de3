"""Instructions the rate limiter adds to one cached GET, counted by valgrind (callgrind).

    MONGODB_DATABASE=<seeded db> .venv/bin/python loadtests/rate_limit_instructions.py

The paired wrk bench (`rate_limit.sh`) gives the figure that counts, req/s on ÷ off, but its
rounds range ±7 points on this machine. An instruction count does not drift. For each of
`RATE_LIMIT_ENABLED` false and true, a child process under callgrind builds the app (a quota
no run reaches), warms one clinic until it is a hit, then sends cached GETs to the ASGI app
one after another, no server and no sockets: once `--small` times, once `--large` times.
Startup cancels out in the difference, so (large − small) ÷ (large − small requests) is the
instructions of one hit, every layer of the app included and the server excluded. Each child
checks that every measured GET was answered by the hot path (a hit that fell through to
Falcon would count the whole app). The lease of reserved units is 10 s and the generation
lease 1 s, so valgrind's slowness does not turn hits into Redis round trips, and the SRE
snapshot runs once a minute (periodic work would be shared among fewer requests).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from pathlib import Path

from pymongo import AsyncMongoClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "loadtests"))
from rate_limit_cpu import get, lifespan  # noqa: E402

from enterprise.app import create_app  # noqa: E402
from enterprise.auth import Role  # noqa: E402
from enterprise.repositories.api_keys import ApiKeysRepository  # noqa: E402
from enterprise.services.api_keys import ApiKeysService  # noqa: E402
from enterprise.settings import Settings  # noqa: E402

RESULTS = Path(os.environ.get("RESULTS", ROOT / "loadtests" / "results" / "tmp"))


async def child(requests: int) -> None:
    settings = Settings.from_env().with_overrides(
        cache_ttl_clinic=3600, cache_generation_lease_ms=1000, rate_limit_lease_ms=10_000
    )
    mongo: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongodb_uri)
    db = mongo[settings.mongodb_database]
    clinic = await db.clinics.find_one({}, {"_id": 1})
    assert clinic is not None, f"{settings.mongodb_database} has no clinics: seed it first"
    path = f"/api/v1/clinics/{clinic['_id']}"
    app = create_app(settings, mongo=mongo)
    await lifespan(app, "startup")
    try:
        repository = ApiKeysRepository(db, guard=app.state.guard)
        key, _ = await ApiKeysService(repository).create("instructions", Role.PLATFORM_ADMIN, None)
        for _ in range(200):
            status, headers = await get(app, path, key)
        assert (status, headers.get(b"x-cache")) == (200, b"hit"), (status, headers)
        hot = app.state.hot_path
        before = hot.answered
        for _ in range(requests):
            await get(app, path, key)
        answered = hot.answered - before
        # A few may fall through while a generation lease renews (under valgrind's speed).
        assert answered >= requests * 0.99, f"only {answered} of {requests} were hot hits"
        sys.stderr.write(f"hot path answered {answered} of {requests}\n")
    finally:
        await lifespan(app, "shutdown")
        await mongo.close()


def counted(enabled: bool, requests: int) -> int:
    out = RESULTS / f"callgrind-ratelimit-{'on' if enabled else 'off'}-{requests}.out"
    env = {
        **os.environ,
        "RATE_LIMIT_ENABLED": "true" if enabled else "false",
        "RATE_LIMITS": os.environ.get("RATE_LIMITS", "*:*:*=60000000/60"),
        "ACCESS_LOG": "false",
        "PYTHONHASHSEED": "0",
        # Periodic work is paid per second, not per request: under valgrind's slowness it
        # would weigh on each hit, and more on the slower side (as instructions.sh does).
        "SRE_SNAPSHOT_INTERVAL_S": "60",
    }
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--quiet",
         sys.executable, __file__, "--child", str(requests)],
        env=env, check=True, timeout=1800,
    )  # fmt: skip
    for line in out.read_text(errors="replace").splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no summary line in {out}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--large", type=int, default=2500)
    parser.add_argument(
        "--off", type=float, help="the limiter-off figure of an earlier run (only `on` runs)"
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        asyncio.run(child(args.child))
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    per_hit = {} if args.off is None else {False: args.off}
    for enabled in (False, True) if args.off is None else (True,):
        small, large = (counted(enabled, n) for n in (args.small, args.large))
        per_hit[enabled] = (large - small) / (args.large - args.small)
    off, on = per_hit[False], per_hit[True]
    sys.stdout.write(
        "| rate limiter | instructions per cached GET, in process |\n|---|---|\n"
        f"| off | {off:,.0f} |\n| on | {on:,.0f} |\n"
        f"| on − off | {on - off:,.0f} ({(on - off) / off:.1%} of a hit's app work) |\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
