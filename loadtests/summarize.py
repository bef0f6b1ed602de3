"""Medians of repeated benchmark runs, and ratios computed within each round.

Reads JSON lines written by loadtests/lib.sh (`wrk_run`) and loadtests/bare_driver.py: each has
a `label`, a `round` and the metrics `rps`, `p50_ms`, `p95_ms`, `p99_ms`. Prints Markdown:

* one row per label with every run and the median, and
* for each `--ratio NAME=NUM/DEN:METRIC`, the ratio NUM÷DEN of METRIC within each round
  (both measured back to back), and the median of those per-round ratios.

    python loadtests/summarize.py server_choice.jsonl \
        --ratio "app÷hello=granian-w1-app/granian-w1-hello:rps"
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

METRICS = ("rps", "p50_ms", "p95_ms", "p99_ms")
# Process CPU per request: the API server's (workers included) or bare_driver.py's own.
OPTIONAL = ("cpu_ms_per_req",)


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(rows: list[dict[str, Any]]) -> str:
    by_label: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_label[row["label"]].append(row)
    lines = [
        "| label | runs | req/s (runs → median) | P50 ms | P95 ms | P99 ms | CPU ms/req"
        " | errors | load1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, runs in by_label.items():
        runs.sort(key=lambda r: r.get("round", 0))
        cells = []
        for metric in METRICS:
            values = [float(r[metric]) for r in runs]
            listed = " / ".join(_fmt(v) for v in values)
            cells.append(f"{listed} → **{_fmt(statistics.median(values))}**")
        for metric in OPTIONAL:
            if all(metric in r for r in runs):
                values = [float(r[metric]) for r in runs]
                listed = " / ".join(f"{v:.2f}" for v in values)
                cells.append(f"{listed} → **{statistics.median(values):.2f}**")
            else:
                cells.append("-")
        errors = sum(sum(r.get("errors", {}).values()) for r in runs)
        load = " / ".join(str(r["load1"]) for r in runs if "load1" in r) or "-"
        lines.append(f"| {label} | {len(runs)} | " + " | ".join(cells) + f" | {errors} | {load} |")
    return "\n".join(lines)


def ratios(rows: list[dict[str, Any]], specs: list[str]) -> str:
    index = {(r["label"], r.get("round", 0)): r for r in rows}
    rounds = sorted({r.get("round", 0) for r in rows})
    lines = ["| ratio | per round | median |", "|---|---|---|"]
    for spec in specs:
        name, _, rest = spec.partition("=")
        pair, _, metric = rest.rpartition(":")
        numerator, _, denominator = pair.partition("/")  # labels never contain "/" or ":"
        values = []
        for number in rounds:
            num, den = index.get((numerator, number)), index.get((denominator, number))
            if num is not None and den is not None and float(den[metric]) > 0:
                values.append(float(num[metric]) / float(den[metric]))
        if not values:
            lines.append(f"| {name} ({metric}) | no data | - |")
            continue
        listed = " / ".join(f"{v:.2f}" for v in values)
        lines.append(f"| {name} ({metric}) | {listed} | **{statistics.median(values):.2f}** |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jsonl", type=Path)
    parser.add_argument("--ratio", action="append", default=[], help="NAME=NUM/DEN:METRIC")
    args = parser.parse_args()
    rows = load(args.jsonl)
    if not rows:
        sys.stderr.write(f"no rows in {args.jsonl}\n")
        return 1
    sys.stdout.write(table(rows) + "\n")
    if args.ratio:
        sys.stdout.write("\n" + ratios(rows, args.ratio) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
