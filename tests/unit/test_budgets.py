from __future__ import annotations

import logging

import falcon
import falcon.asgi
import falcon.testing
import pytest

from middleware.budgets import BudgetMiddleware, BudgetTracker

pytestmark = pytest.mark.unit

TARGETS = {"default": 100.0, "clinic": 150.0, "reports": 2000.0}


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_breaches_and_burn_rate() -> None:
    tracker = BudgetTracker(TARGETS, clock=FakeClock())
    for _ in range(90):
        tracker.record("GET /a", "default", 50.0)
    for _ in range(10):
        tracker.record("GET /a", "default", 150.0)

    [row] = tracker.snapshot()
    minute = row["windows"]["1m"]
    assert (row["route"], row["class"], row["target_ms"]) == ("GET /a", "default", 100.0)
    assert (minute["count"], minute["breaches"]) == (100, 10)
    assert minute["burn_rate"] == 2.0  # 10% over target spends a 5% budget twice as fast
    assert minute["status"] == "breach"
    assert minute["p95"] == pytest.approx(150.0, rel=0.01)


def test_within_budget_and_no_data() -> None:
    clock = FakeClock()
    tracker = BudgetTracker(TARGETS, clock=clock)
    for ms in [10.0] * 98 + [200.0] * 2:
        tracker.record("GET /b", "clinic", ms)
    clock.now += 120

    windows = tracker.snapshot()[0]["windows"]
    assert windows["1m"] == {
        "count": 0,
        "p50": None,
        "p95": None,
        "p99": None,
        "max": None,
        "breaches": 0,
        "burn_rate": None,
        "errors": 0,
        "status": "no-data",
    }
    assert windows["5m"]["burn_rate"] == 0.4
    assert windows["5m"]["status"] == "ok"
    assert windows["1h"]["count"] == 100


def test_unknown_class_uses_default_and_rows_are_sorted() -> None:
    tracker = BudgetTracker(TARGETS, clock=FakeClock())
    tracker.record("GET /z", "reports", 1.0)
    tracker.record("GET /m", "nonsense", 1.0)

    rows = tracker.snapshot()
    assert [(r["route"], r["target_ms"]) for r in rows] == [("GET /m", 100.0), ("GET /z", 2000.0)]


def test_targets_need_a_default() -> None:
    with pytest.raises(ValueError, match="default"):
        BudgetTracker({"clinic": 150.0})


def test_breach_warning_is_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    tracker = BudgetTracker(TARGETS, clock=clock, warn_interval_s=60.0)

    with caplog.at_level(logging.WARNING, logger="middleware.budgets"):
        for _ in range(50):  # 50 s of slow traffic, 1 s apart
            tracker.record("GET /slow", "default", 250.0)
            clock.now += 1
        assert [r.getMessage() for r in caplog.records] == [
            "budget breach: route=GET /slow p95=250.0ms target=100ms"
        ]

        clock.now += 15
        tracker.record("GET /slow", "default", 250.0)
    assert len(caplog.records) == 2


def test_fast_route_never_warns(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    tracker = BudgetTracker(TARGETS, clock=clock)
    with caplog.at_level(logging.WARNING, logger="middleware.budgets"):
        for _ in range(5):
            tracker.record("GET /fast", "default", 5.0)
            clock.now += 2
    assert caplog.records == []


class ClinicResource:
    budget_class = "clinic"

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, clinic_id: str
    ) -> None:
        resp.media = {"id": clinic_id}


async def test_falcon_middleware_records_route_template_and_class() -> None:
    tracker = BudgetTracker(TARGETS)
    app = falcon.asgi.App(middleware=[BudgetMiddleware(tracker)])
    app.add_route("/api/v1/clinics/{clinic_id}", ClinicResource())

    async with falcon.testing.ASGIConductor(app) as conductor:
        ok = await conductor.simulate_get("/api/v1/clinics/42")
        await conductor.simulate_get("/api/v1/clinics/43")
        missing = await conductor.simulate_get("/nowhere")

    assert (ok.status_code, ok.json, missing.status_code) == (200, {"id": "42"}, 404)
    rows = {r["route"]: r for r in tracker.snapshot()}
    assert set(rows) == {"GET /api/v1/clinics/{clinic_id}", "unmatched"}
    clinic = rows["GET /api/v1/clinics/{clinic_id}"]
    assert (clinic["class"], clinic["target_ms"]) == ("clinic", 150.0)
    assert clinic["windows"]["1m"]["count"] == 2
    assert rows["unmatched"]["class"] == "default"


def test_windows_of_two_processes_add_up_to_one() -> None:
    """What /performance endpoints do across workers: encode each worker's window, decode,
    add; the sum's quantiles equal those of one tracker that saw every request."""
    from enterprise.histogram import Window
    from middleware.budgets import window_summary

    clock = FakeClock()
    one, two, both = (BudgetTracker(TARGETS, clock=clock) for _ in range(3))
    for i in range(200):
        ms = 1.0 + (i * 37) % 90
        (one if i % 3 else two).record("GET /b", "clinic", ms, error=i % 50 == 0)
        both.record("GET /b", "clinic", ms, error=i % 50 == 0)
    merged = Window.decode(one.export()[0]["windows"]["1m"]) + Window.decode(
        two.export()[0]["windows"]["1m"]
    )
    assert window_summary(merged, 100.0) == both.snapshot()[0]["windows"]["1m"]
    assert window_summary(merged, 100.0)["errors"] == 4
