"""The load-test budget table: the k6 thresholds and the service's budgets agree with it, and
runs are judged by it."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from enterprise.performance import HIT_RATE_TARGETS
from enterprise.settings import DEFAULT_BUDGETS_MS
from loadtests import budgets

pytestmark = pytest.mark.unit

COMMON = (budgets.K6_DIR / "common.js").read_text()


def test_k6_scripts_and_settings_agree_with_the_table() -> None:
    assert budgets.check() == []


def test_a_drifted_k6_budget_is_reported() -> None:
    drifted = COMMON.replace("lists: 200", "lists: 250")
    problems = budgets.k6_problems(budgets.load(), drifted, {})
    assert problems == ["common.js: lists p(95)<250 ms, the table says 200.0"]


def test_a_drifted_error_rate_is_reported() -> None:
    drifted = COMMON.replace("rate<0.001", "rate<0.01")
    (problem,) = budgets.k6_problems(budgets.load(), drifted, {})
    assert problem.startswith("common.js: http_req_failed rate<0.01")


def test_a_kind_without_budget_is_reported() -> None:
    script = {"new.js": "thresholds: budgetThresholds(['crud', 'export'])"}
    problems = budgets.k6_problems(budgets.load(), COMMON, script)
    assert problems == ["new.js: kind export has no budget in common.js"]


def test_a_service_budget_change_is_reported() -> None:
    service = {**DEFAULT_BUDGETS_MS, "search": 250.0}
    (problem,) = budgets.settings_problems(budgets.load(), service, HIT_RATE_TARGETS)
    assert "service's search budget is 250.0 ms" in problem


def test_a_drifted_hit_rate_is_reported() -> None:
    drifted = COMMON.replace("lists: 0.6 }", "lists: 0.5 }")
    (problem,) = budgets.k6_problems(budgets.load(), drifted, {})
    assert problem.startswith("common.js: cache hit rates {'crud': 0.8, 'lists': 0.5}")


def test_a_service_hit_rate_change_is_reported() -> None:
    targets = {**HIT_RATE_TARGETS, "clinics": 0.9}
    (problem,) = budgets.settings_problems(budgets.load(), DEFAULT_BUDGETS_MS, targets)
    assert problem == "crud hit rate is 0.8 in the table, the service's clinics target is 0.9"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the k6 scripts' syntax and thresholds need it")
    return node


def test_k6_scripts_parse() -> None:
    node = _node()
    for script in sorted(budgets.K6_DIR.glob("*.js")):
        done = subprocess.run(
            [node, "--check", str(script)], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"{script.name}: {done.stderr}"


def k6_thresholds() -> dict[str, dict[str, list[str]]]:
    """Each script's `options.thresholds`, computed by the scripts' own code under Node."""
    scripts = sorted(str(p) for p in budgets.K6_DIR.glob("*.js") if p.name != "common.js")
    done = subprocess.run(
        [_node(), str(budgets.K6_DIR / "thresholds.mjs"), *scripts],
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, dict[str, list[str]]] = json.loads(done.stdout)
    return found


def test_k6_thresholds_as_the_scripts_compute_them_agree_with_the_table() -> None:
    found = k6_thresholds()
    assert set(found) == {"smoke.js", "lists.js", "mix.js"}
    assert budgets.k6_threshold_problems(budgets.load(), found) == []
    # The mixed scenario judges every class, and the cache, on the steady phase.
    mix = found["mix.js"]
    assert mix["http_req_duration{kind:reports,phase:steady}"] == ["p(95)<2000"]
    assert mix["cache_hit{kind:crud,phase:steady}"] == ["rate>=0.8"]
    assert mix["cache_hit{kind:lists,phase:steady}"] == ["rate>=0.6"]


def test_a_drifted_computed_threshold_is_reported() -> None:
    found = {"x.js": {"http_req_failed": ["rate<0.01"], "checks": ["rate>0.99"]}}
    found["x.js"]["cache_hit{kind:crud}"] = ["rate>=0.7"]
    found["x.js"]["http_req_duration{kind:export}"] = ["p(95)<100"]
    assert budgets.k6_threshold_problems(budgets.load(), found) == [
        "x.js: http_req_failed is ['rate<0.01'], the table says ['rate<0.001']",
        "x.js: cache_hit{kind:crud} is ['rate>=0.7'], the table says ['rate>=0.8']",
        "x.js: http_req_duration{kind:export} has no row in the budget table",
    ]


def _run(**classes: budgets.ClassFigures) -> budgets.RunFigures:
    run = budgets.RunFigures(classes=dict(classes))
    run.requests = sum(c.requests for c in classes.values())
    return run


def test_a_run_within_every_budget_has_no_breaches() -> None:
    run = _run(
        crud=budgets.ClassFigures(1000, 149.0, 900, 800),
        lists=budgets.ClassFigures(500, 200.0, 500, 300),
        reports=budgets.ClassFigures(10, 1900.0),
    )
    assert budgets.breaches(budgets.load(), run) == []


def test_p95_hit_rate_and_error_breaches_are_named() -> None:
    run = _run(
        crud=budgets.ClassFigures(1000, 151.0, 100, 79),
        lists=budgets.ClassFigures(500, 50.0, 500, 299),
    )
    run.failures = 2
    assert budgets.breaches(budgets.load(), run) == [
        "crud P95 151 ms > 150 ms",
        "crud cache hit rate 0.790 < 0.8 (100 lookups)",
        "lists cache hit rate 0.598 < 0.6 (500 lookups)",
        "error rate 0.0013 > 0.001 (2 of 1500)",
    ]


def test_few_lookups_and_a_lowered_budget() -> None:
    run = _run(crud=budgets.ClassFigures(40, 20.0, 40, 0))
    assert budgets.breaches(budgets.load(), run) == []  # 40 cold lookups say nothing
    assert budgets.breaches(budgets.load(), run, p95_factor=0.1) == ["crud P95 20 ms > 15 ms"]
