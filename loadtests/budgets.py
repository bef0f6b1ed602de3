"""The load-test budget table (`loadtests/k6/budgets.json`): loading it, judging a run by it,
and the check that keeps the k6 thresholds and the service's own targets in agreement with it.

    python loadtests/budgets.py check      # exit 1 on any disagreement

The table sits beside the k6 scripts so the compose `k6` service mounts it with them. locust
(`loadtests/locustfile.py`) and the step-load search judge their runs with `breaches`, so the
rules (P95 per route class, error rate, cache hit rate) are written once.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
TABLE = HERE / "k6" / "budgets.json"
K6_DIR = HERE / "k6"


@dataclass(frozen=True, slots=True)
class Budgets:
    p95_ms: Mapping[str, float]
    settings_classes: Mapping[str, tuple[str, ...]]
    min_cache_hit_rate: Mapping[str, float]
    hit_rate_classes: Mapping[str, tuple[str, ...]]
    max_error_rate: float
    min_checks_rate: float


def load(path: Path = TABLE) -> Budgets:
    data = json.loads(path.read_text())
    return Budgets(
        p95_ms={kind: float(ms) for kind, ms in data["p95_ms"].items()},
        settings_classes={k: tuple(v) for k, v in data["settings_classes"].items()},
        min_cache_hit_rate={k: float(v) for k, v in data["min_cache_hit_rate"].items()},
        hit_rate_classes={k: tuple(v) for k, v in data["hit_rate_classes"].items()},
        max_error_rate=float(data["max_error_rate"]),
        min_checks_rate=float(data["min_checks_rate"]),
    )


@dataclass(slots=True)
class ClassFigures:
    """What a run measured for one route class."""

    requests: int = 0
    p95_ms: float = 0.0
    cache_lookups: int = 0  # responses that carried X-Cache
    cache_hits: int = 0  # of those, X-Cache: hit or stale

    @property
    def hit_rate(self) -> float | None:
        return self.cache_hits / self.cache_lookups if self.cache_lookups else None


@dataclass(slots=True)
class RunFigures:
    classes: dict[str, ClassFigures] = field(default_factory=dict)
    requests: int = 0
    failures: int = 0

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def breaches(
    budgets: Budgets,
    run: RunFigures,
    *,
    p95_factor: float = 1.0,
    hit_rate_min_lookups: int = 50,
) -> list[str]:
    """Every budget `run` missed, worded for a log line; empty when all hold.

    `p95_factor` scales the P95 budgets (below 1 to fail a run on purpose). A hit rate is
    judged only over at least `hit_rate_min_lookups` lookups: a handful of cold misses at the
    start of a short step says nothing about the cache.
    """
    found = []
    for kind, figures in sorted(run.classes.items()):
        budget = budgets.p95_ms.get(kind)
        if budget is not None and figures.requests and figures.p95_ms > budget * p95_factor:
            found.append(f"{kind} P95 {figures.p95_ms:.0f} ms > {budget * p95_factor:g} ms")
        target = budgets.min_cache_hit_rate.get(kind)
        rate = figures.hit_rate
        if (
            target is not None
            and rate is not None
            and figures.cache_lookups >= hit_rate_min_lookups
            and rate < target
        ):
            found.append(
                f"{kind} cache hit rate {rate:.3f} < {target:g} ({figures.cache_lookups} lookups)"
            )
    if run.error_rate > budgets.max_error_rate:
        found.append(
            f"error rate {run.error_rate:.4f} > {budgets.max_error_rate:g}"
            f" ({run.failures} of {run.requests})"
        )
    return found


_K6_BUDGETS = re.compile(r"export const BUDGETS = \{([^}]*)\}")
_K6_HIT_RATES = re.compile(r"export const CACHE_HIT_RATES = \{([^}]*)\}")
_K6_ENTRY = re.compile(r"(\w+)\s*:\s*([0-9.]+)")
_K6_RATE = re.compile(r"(http_req_failed|checks):\s*\['rate([<>])([0-9.]+)'\]")
_K6_USED = re.compile(r"budgetThresholds\(\[([^\]]*)\]")


def _entries(pattern: re.Pattern[str], text: str) -> dict[str, float] | None:
    found = pattern.search(text)
    if found is None:
        return None
    return {kind: float(value) for kind, value in _K6_ENTRY.findall(found.group(1))}


def k6_problems(budgets: Budgets, common_js: str, scripts: Mapping[str, str]) -> list[str]:
    """Where the k6 thresholds in `common_js` (and the kinds `scripts` ask for) differ."""
    k6 = _entries(_K6_BUDGETS, common_js)
    if k6 is None:
        return ["common.js: no `export const BUDGETS = {...}` to check"]
    problems = [
        f"common.js: {kind} p(95)<{ms:g} ms, the table says {budgets.p95_ms.get(kind)}"
        for kind, ms in k6.items()
        if budgets.p95_ms.get(kind) != ms
    ]
    problems += [
        f"common.js: no p(95) budget for {kind} (the table has {ms:g} ms)"
        for kind, ms in budgets.p95_ms.items()
        if kind not in k6
    ]
    hit_rates = _entries(_K6_HIT_RATES, common_js)
    if hit_rates is None:
        problems.append("common.js: no `export const CACHE_HIT_RATES = {...}` to check")
    elif hit_rates != dict(budgets.min_cache_hit_rate):
        problems.append(
            f"common.js: cache hit rates {hit_rates}, the table says "
            f"{dict(budgets.min_cache_hit_rate)}"
        )
    rates = {name: (op, float(value)) for name, op, value in _K6_RATE.findall(common_js)}
    wanted = {
        "http_req_failed": ("<", budgets.max_error_rate),
        "checks": (">", budgets.min_checks_rate),
    }
    problems += [
        f"common.js: {name} rate{rates.get(name, ('?', '?'))[0]}{rates.get(name, ('?', '?'))[1]}"
        f", the table says rate{op}{value:g}"
        for name, (op, value) in wanted.items()
        if rates.get(name) != (op, value)
    ]
    for script, text in sorted(scripts.items()):
        for group in _K6_USED.findall(text):
            kinds = re.findall(r"'(\w+)'", group)
            problems += [
                f"{script}: kind {kind} has no budget in common.js"
                for kind in kinds
                if kind not in k6
            ]
    return problems


_SELECTOR = re.compile(r"^(\w+)(?:\{([^}]*)\})?$")


def k6_threshold_problems(
    budgets: Budgets, thresholds: Mapping[str, Mapping[str, list[str]]]
) -> list[str]:
    """Where the thresholds the k6 scripts really end up with (per script, as
    `loadtests/k6/thresholds.mjs` prints them after running the scripts under Node) differ
    from the table."""
    problems = []
    for script, found in sorted(thresholds.items()):
        for required in ("http_req_failed", "checks"):
            if required not in found:
                problems.append(f"{script}: no {required} threshold")
        for selector, rules in found.items():
            parsed = _SELECTOR.match(selector)
            if parsed is None:
                problems.append(f"{script}: cannot read the threshold {selector!r}")
                continue
            metric, tags = (
                parsed.group(1),
                dict(tag.split(":", 1) for tag in (parsed.group(2) or "").split(",") if tag),
            )
            kind = tags.get("kind", "")
            if metric == "http_req_failed":
                wanted = [f"rate<{budgets.max_error_rate:g}"]
            elif metric == "checks":
                wanted = [f"rate>{budgets.min_checks_rate:g}"]
            elif metric == "http_req_duration" and kind in budgets.p95_ms:
                wanted = [f"p(95)<{budgets.p95_ms[kind]:g}"]
            elif metric == "cache_hit" and kind in budgets.min_cache_hit_rate:
                wanted = [f"rate>={budgets.min_cache_hit_rate[kind]:g}"]
            else:
                problems.append(f"{script}: {selector} has no row in the budget table")
                continue
            if list(rules) != wanted:
                problems.append(f"{script}: {selector} is {list(rules)}, the table says {wanted}")
    return problems


def settings_problems(
    budgets: Budgets,
    service_ms: Mapping[str, float],
    service_hit_rates: Mapping[str, float] | None = None,
) -> list[str]:
    """Where the table differs from the P95 budgets and hit-rate targets the service tracks."""
    problems = []
    for kind, classes in budgets.settings_classes.items():
        for name in classes:
            if service_ms.get(name) != budgets.p95_ms.get(kind):
                problems.append(
                    f"{kind} is {budgets.p95_ms.get(kind)} ms in the table, the service's "
                    f"{name} budget is {service_ms.get(name)} ms"
                )
    for kind, kinds in budgets.hit_rate_classes.items():
        for name in kinds:
            target = (service_hit_rates or {}).get(name)
            if target != budgets.min_cache_hit_rate.get(kind):
                problems.append(
                    f"{kind} hit rate is {budgets.min_cache_hit_rate.get(kind)} in the table, "
                    f"the service's {name} target is {target}"
                )
    return problems


def check() -> list[str]:
    """Every disagreement between the table, the k6 scripts and the service's settings."""
    sys.path.insert(0, str(HERE.parent))
    from enterprise.performance import HIT_RATE_TARGETS
    from enterprise.settings import DEFAULT_BUDGETS_MS

    budgets = load()
    scripts = {path.name: path.read_text() for path in K6_DIR.glob("*.js")}
    return k6_problems(budgets, scripts["common.js"], scripts) + settings_problems(
        budgets, DEFAULT_BUDGETS_MS, HIT_RATE_TARGETS
    )


def main(argv: list[str]) -> int:
    if argv[1:] != ["check"]:
        sys.stderr.write("usage: python loadtests/budgets.py check\n")
        return 2
    problems = check()
    for problem in problems:
        sys.stdout.write(f"problem: {problem}\n")
    sys.stdout.write(f"budget table {TABLE.name}: {len(problems)} problems\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
