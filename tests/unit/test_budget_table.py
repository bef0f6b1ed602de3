"""The load-test budget table agrees with the k6 thresholds and the service's budgets."""

from __future__ import annotations

import pytest

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
    (problem,) = budgets.settings_problems(budgets.load(), service)
    assert "service's search budget is 250.0 ms" in problem
