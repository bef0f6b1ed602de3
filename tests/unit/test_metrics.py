"""Prometheus instruments of one app: batched values reach the exposition once, exactly."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from enterprise.metrics import Metrics

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
