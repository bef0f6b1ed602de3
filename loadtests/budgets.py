"""The load-test budget table (`loadtests/k6/budgets.json`) and the check that keeps the k6
thresholds and the service's own P95 budgets in agreement with it.

    python loadtests/budgets.py check      # exit 1 on any disagreement

The table sits beside the k6 scripts so the compose `k6` service mounts it with them.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
TABLE = HERE / "k6" / "budgets.json"
K6_DIR = HERE / "k6"


@dataclass(frozen=True, slots=True)
class Budgets:
    p95_ms: Mapping[str, float]
    settings_classes: Mapping[str, tuple[str, ...]]
    max_error_rate: float
    min_checks_rate: float


def load(path: Path = TABLE) -> Budgets:
    data = json.loads(path.read_text())
    return Budgets(
        p95_ms={kind: float(ms) for kind, ms in data["p95_ms"].items()},
        settings_classes={k: tuple(v) for k, v in data["settings_classes"].items()},
        max_error_rate=float(data["max_error_rate"]),
        min_checks_rate=float(data["min_checks_rate"]),
    )


_K6_BUDGETS = re.compile(r"export const BUDGETS = \{([^}]*)\}")
_K6_ENTRY = re.compile(r"(\w+)\s*:\s*([0-9.]+)")
_K6_RATE = re.compile(r"(http_req_failed|checks):\s*\['rate([<>])([0-9.]+)'\]")
_K6_USED = re.compile(r"budgetThresholds\(\[([^\]]*)\]\)")


def k6_problems(budgets: Budgets, common_js: str, scripts: Mapping[str, str]) -> list[str]:
    """Where the k6 thresholds in `common_js` (and the kinds `scripts` ask for) differ."""
    found = _K6_BUDGETS.search(common_js)
    if found is None:
        return ["common.js: no `export const BUDGETS = {...}` to check"]
    k6 = {kind: float(ms) for kind, ms in _K6_ENTRY.findall(found.group(1))}
    problems = [
        f"common.js: {kind} p(95)<{ms:g} ms, the table says {budgets.p95_ms.get(kind)}"
        for kind, ms in k6.items()
        if budgets.p95_ms.get(kind) != ms
    ]
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


def settings_problems(budgets: Budgets, service_ms: Mapping[str, float]) -> list[str]:
    """Where the table differs from the P95 budgets the service itself tracks."""
    problems = []
    for kind, classes in budgets.settings_classes.items():
        for name in classes:
            if service_ms.get(name) != budgets.p95_ms.get(kind):
                problems.append(
                    f"{kind} is {budgets.p95_ms.get(kind)} ms in the table, the service's "
                    f"{name} budget is {service_ms.get(name)} ms"
                )
    return problems


def check() -> list[str]:
    """Every disagreement between the table, the k6 scripts and the service's settings."""
    sys.path.insert(0, str(HERE.parent))
    from enterprise.settings import DEFAULT_BUDGETS_MS

    budgets = load()
    scripts = {path.name: path.read_text() for path in K6_DIR.glob("*.js")}
    return k6_problems(budgets, scripts["common.js"], scripts) + settings_problems(
        budgets, DEFAULT_BUDGETS_MS
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
