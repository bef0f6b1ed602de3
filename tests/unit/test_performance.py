"""Combining workers' snapshots: sums, worst states, and multi-window burn-rate alerts."""

from __future__ import annotations

from typing import Any

import pytest

from enterprise import performance
from middleware.budgets import BudgetTracker

pytestmark = pytest.mark.unit
TARGETS = {"clinics": 100.0, "default": 500.0}


class FakeClock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


def _snapshot(pid: int, tracker: BudgetTracker, **overrides: Any) -> dict[str, Any]:
    snapshot: dict[str, Any] = {
        "pid": pid,
        "at": 0.0,
        "uptimeS": 1.0,
        "rssBytes": 1,
        "inflight": 0,
        "routes": tracker.export(),
        "queries": {},
        "cache": {
            "lookups": [],
            "entries": 0,
            "evictions": 0,
            "degraded": False,
            "redisErrors": 0,
        },
        "breakers": [],
        "slowQueries": [],
        "writeGuard": {"enabled": False, "refused": 0},
    }
    snapshot.update(overrides)
    return snapshot


def test_counts_add_and_percentiles_come_from_the_summed_histogram() -> None:
    clock = FakeClock()
    fast, slow = BudgetTracker(TARGETS, clock=clock), BudgetTracker(TARGETS, clock=clock)
    for _ in range(90):
        fast.record("GET /c", "clinics", 10.0)
    for _ in range(10):
        slow.record("GET /c", "clinics", 400.0, error=True)
    body = performance.summary([_snapshot(1, fast), _snapshot(2, slow)], now=0.0)
    [route] = body["routes"]
    minute = route["windows"]["1m"]
    assert (minute["count"], minute["errors"], minute["errorRate"]) == (100, 10, 0.1)
    # Averaging each worker's P95 would give (10 + 400) / 2 = 205 ms; the sum says 400.
    assert minute["p95"] == pytest.approx(400.0, rel=0.01)
    assert minute["p50"] == pytest.approx(10.0, rel=0.01)
    assert route["status"] == "breached"
    assert [w["pid"] for w in body["workers"]] == [1, 2]


def test_an_alert_needs_both_windows_to_burn_and_remembers_since_when() -> None:
    clock = FakeClock()
    tracker = BudgetTracker(TARGETS, clock=clock)
    for _ in range(40):  # every request over target for the last minute: fast burn
        tracker.record("GET /c", "clinics", 300.0)
    alerts = performance.firing_alerts([_snapshot(1, tracker)])
    assert {a["rule"] for a in alerts} == {"fast-burn", "slow-burn"}

    clock.now += 120  # the short window of fast-burn is quiet again; the long ones are not
    for _ in range(40):
        tracker.record("GET /c", "clinics", 10.0)
    alerts = performance.firing_alerts([_snapshot(1, tracker)])
    assert {a["rule"] for a in alerts} == {"slow-burn"}
    body = performance.budgets([_snapshot(1, tracker)], alerts, {alerts[0]["id"]: 1234.0})
    assert body["alerts"][0]["since"] == 1234.0
    assert body["budgets"][0]["windows"]["5m"]["burnRate"] == pytest.approx(10.0)


def test_few_requests_raise_no_alert() -> None:
    tracker = BudgetTracker(TARGETS, clock=FakeClock())
    for _ in range(5):
        tracker.record("GET /c", "clinics", 300.0)
    assert performance.firing_alerts([_snapshot(1, tracker)]) == []


def test_cache_lookups_add_per_kind_and_tier_and_a_breaker_shows_its_worst_worker() -> None:
    tracker = BudgetTracker(TARGETS, clock=FakeClock())
    lookups = [
        {"kind": "clinics", "outcome": "hit", "tier": "local", "count": 8},
        {"kind": "clinics", "outcome": "miss", "tier": "none", "count": 2},
    ]
    breaker = {"name": "redis", "failures": 0, "openedAt": None, "nextTryAt": None}
    one = _snapshot(
        1,
        tracker,
        cache={
            "lookups": lookups,
            "entries": 3,
            "evictions": 1,
            "degraded": False,
            "redisErrors": 0,
        },
        breakers=[{**breaker, "state": "closed"}],
    )
    two = _snapshot(
        2,
        tracker,
        cache={
            "lookups": [{"kind": "clinics", "outcome": "hit", "tier": "redis", "count": 10}],
            "entries": 4,
            "evictions": 0,
            "degraded": True,
            "redisErrors": 3,
        },
        breakers=[{**breaker, "state": "open", "failures": 3, "openedAt": 5.0, "nextTryAt": 10.0}],
    )
    stats = performance.cache_stats([one, two])
    clinics = next(k for k in stats["kinds"] if k["kind"] == "clinics")
    assert (clinics["hits"], clinics["misses"], clinics["hitRate"]) == (18, 2, 0.9)
    assert clinics["tiers"] == {"local": 8, "redis": 10}
    assert clinics["meetsTarget"] is True
    assert (stats["entries"], stats["evictions"], stats["degraded"]) == (7, 1, True)
    assert stats["degradedWorkers"] == [2]
    [redis] = performance.circuit_breakers([one, two])["breakers"]
    assert (redis["state"], redis["openedAt"], redis["nextTryAt"]) == ("open", 5.0, 10.0)
    assert [w["state"] for w in redis["workers"]] == ["closed", "open"]
