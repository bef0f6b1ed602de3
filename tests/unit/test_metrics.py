"""Prometheus instruments of one app: batched values reach the exposition once, exactly."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from enterprise.context import RequestTimings
from enterprise.metrics import _REQUEST_BUCKETS, Metrics

pytestmark = pytest.mark.unit


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    raise AssertionError(f"no sample {name} {labels}")


def test_cache_lookups_are_handed_over_as_deltas_and_in_flight_as_a_sample() -> None:
    metrics = Metrics()
    hits = ("clinics", "hit", "local")
    metrics.sync(3, {hits: 5})
    metrics.sync(3, {hits: 5})  # nothing new: nothing added
    assert (
        _value(
            metrics, "enterprise_cache_lookups_total", kind="clinics", outcome="hit", tier="local"
        )
        == 5
    )
    metrics.sync(0, {hits: 8, ("lists", "miss", "none"): 1})
    assert (
        _value(
            metrics, "enterprise_cache_lookups_total", kind="clinics", outcome="hit", tier="local"
        )
        == 8
    )
    assert (
        _value(metrics, "enterprise_cache_lookups_total", kind="lists", outcome="miss", tier="none")
        == 1
    )
    assert _value(metrics, "enterprise_http_requests_in_flight") == 0


def test_two_apps_in_one_process_keep_their_own_values() -> None:
    one, two = Metrics(), Metrics()
    one.breaker_state("redis", "open")
    two.breaker_state("redis", "closed")
    assert _value(one, "enterprise_circuit_breaker_state", breaker="redis") == 2
    assert _value(two, "enterprise_circuit_breaker_state", breaker="redis") == 0


def _histogram(text: bytes, name: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
        if sample.name.startswith(name) and not sample.name.endswith("_created")
    }


def test_request_durations_are_batched_and_expose_as_observe_would() -> None:
    """Durations are counted in the worker and handed over at a sync: the exposition then
    is exactly what one `observe` per request gives (bucket edges included), whether the app
    or the hot path answered, and a second sync adds nothing."""
    metrics = Metrics()
    reference = Histogram(
        "enterprise_http_request_duration_seconds",
        "reference",
        ("route", "method", "status_class"),
        buckets=_REQUEST_BUCKETS,
        registry=(registry := CollectorRegistry()),
    )
    cases = [
        ("/api/v1/clinics/{clinic_id}", "GET", 200, ms)
        for ms in (0.3, 5.0, 5.0001, 150.0, 151.0, 120_000.0, 500_000.0)
    ] + [("/api/v1/clinics", "POST", 201, 42.0), ("/api/v1/clinics", "BREW", 404, 1.0)]
    for index, (route, method, status, ms) in enumerate(cases):
        if method == "GET" and index % 2:  # every other GET as the hot path reports its hits
            metrics.observe_hit(route, status, "hit", "key", ms, "request", RequestTimings())
        else:
            req = SimpleNamespace(uri_template=route, method=method)
            metrics.observe_request(req, SimpleNamespace(status_code=status), "default", ms)  # type: ignore[arg-type]
        shown = method if method != "BREW" else "OTHER"
        reference.labels(route, shown, f"{status // 100}xx").observe(ms / 1000)

    name = "enterprise_http_request_duration_seconds"
    assert not any(_histogram(metrics.exposition(), name).values())  # not handed over yet
    metrics.sync(0, {})
    expected = _histogram(generate_latest(registry), name)
    assert _histogram(metrics.exposition(), name) == pytest.approx(expected)
    assert expected[(f"{name}_count", (("method", "GET"), ("route", cases[0][0]),
                                       ("status_class", "2xx")))] == 7  # fmt: skip
    metrics.sync(0, {})
    assert _histogram(metrics.exposition(), name) == pytest.approx(expected)
