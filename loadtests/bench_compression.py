"""(d) brotli (quality 4) vs gzip (level 6) on a real ~50 KB JSON list body.

Fetches `GET /api/v1/clinics?limit=100` from a running API without Accept-Encoding (the
identity body, exactly what the compression middleware receives), then times each codec the
way `middleware/compression.py` calls it (`brotli.compress(body, mode=MODE_TEXT, quality=q)`,
`gzip.compress(body, compresslevel=l, mtime=0)`): bytes out, ratio, and CPU µs per body.

Timing: `time.process_time` (CPU time of this process) around `number` compressions, ROUNDS
samples per codec, codecs interleaved in each round; median and min per compression.

    .venv/bin/python loadtests/bench_compression.py --base http://127.0.0.1:PORT --key KEY
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
import urllib.request
from collections.abc import Callable
from importlib.metadata import version

import brotli

PATH = "/api/v1/clinics?limit=100"


def fetch(base: str, key: str) -> bytes:
    request = urllib.request.Request(
        base + PATH, headers={"Authorization": f"Bearer {key}", "Accept-Encoding": "identity"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - 127.0.0.1 only
        assert response.headers.get("Content-Encoding") in (None, "identity")
        body: bytes = response.read()
    return body


def cpu_per_call(call: Callable[[], bytes], number: int) -> float:
    started = time.process_time()
    for _ in range(number):
        call()
    return (time.process_time() - started) / number * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=200)
    parser.add_argument("--save", help="write the fetched body here")
    args = parser.parse_args()
    body = fetch(args.base, args.key)
    if args.save:
        with open(args.save, "wb") as handle:
            handle.write(body)
    codecs: dict[str, Callable[[], bytes]] = {
        "br q4": lambda: brotli.compress(body, mode=brotli.MODE_TEXT, quality=4),
        "gzip 6": lambda: gzip.compress(body, compresslevel=6, mtime=0),
        "br q5": lambda: brotli.compress(body, mode=brotli.MODE_TEXT, quality=5),
        "gzip 1": lambda: gzip.compress(body, compresslevel=1, mtime=0),
    }
    sizes = {name: len(call()) for name, call in codecs.items()}
    samples: dict[str, list[float]] = {name: [] for name in codecs}
    for _ in range(args.rounds):
        for name, call in codecs.items():
            samples[name].append(cpu_per_call(call, args.number))
    out = sys.stdout
    out.write(
        f"body: GET {PATH} = {len(body):,} bytes (identity); brotli module {version('brotli')}, "
        f"{args.rounds} rounds x {args.number} compressions, CPU time (process_time)\n\n"
        "| codec | bytes | % of identity | CPU µs/body median | min |\n|---|---|---|---|---|\n"
    )
    for name in codecs:
        out.write(
            f"| {name} | {sizes[name]:,} | {sizes[name] / len(body):.1%} | "
            f"{statistics.median(samples[name]):,.0f} | {min(samples[name]):,.0f} |\n"
        )
    br, gz = statistics.median(samples["br q4"]), statistics.median(samples["gzip 6"])
    out.write(
        f"\nbr q4 vs gzip 6: bytes {sizes['br q4'] / sizes['gzip 6']:.2f}x, CPU {br / gz:.2f}x\n"
    )
    out.write(
        "COMPRESSION_JSON "
        + json.dumps(
            {
                "identity": len(body),
                "bytes": sizes,
                "cpu_us_median": {k: statistics.median(v) for k, v in samples.items()},
            }
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
