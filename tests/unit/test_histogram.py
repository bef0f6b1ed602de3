from __future__ import annotations

import math
import random

import pytest

from enterprise.histogram import SlidingLatency

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def exact(sorted_values: list[float], percentile: float) -> float:
    """Nearest-rank quantile, the definition HdrHistogram uses."""
    return sorted_values[math.ceil(percentile / 100 * len(sorted_values)) - 1]


def test_quantiles_match_exact_ones_within_one_percent() -> None:
    rng = random.Random(42)
    values = [rng.lognormvariate(math.log(40.0), 0.6) for _ in range(10_000)]
    latency = SlidingLatency(target_ms=100.0, clock=FakeClock())
    for value in values:
        latency.record(value)

    stats = latency.snapshot(60)
    ordered = sorted(values)

    assert stats.count == 10_000
    assert stats.p50 == pytest.approx(exact(ordered, 50), rel=0.01)
    assert stats.p95 == pytest.approx(exact(ordered, 95), rel=0.01)
    assert stats.p99 == pytest.approx(exact(ordered, 99), rel=0.01)
    assert stats.max == ordered[-1]
    assert stats.over_target == sum(v > 100.0 for v in values)


def test_old_values_leave_the_minute_but_stay_in_five_minutes_and_the_hour() -> None:
    clock = FakeClock()
    latency = SlidingLatency(clock=clock)
    latency.record(500.0)
    clock.now += 61
    latency.record(10.0)

    assert (latency.snapshot(60).count, latency.snapshot(60).max) == (1, 10.0)
    assert latency.snapshot(300).count == 2
    assert latency.snapshot(3600).count == 2

    clock.now += 300
    assert latency.snapshot(300).count == 0
    assert latency.snapshot(3600).max == 500.0

    clock.now += 3600
    assert latency.snapshot(3600).count == 0


def test_the_hour_holds_every_value_once_as_its_ten_second_slots_close() -> None:
    """A value is recorded in its 10 s slot only; the hour adds the slot to its minute when
    the slot closes (at a later recording or read), and reads the open slot meanwhile."""
    clock = FakeClock(6000.0)  # the start of a minute
    latency = SlidingLatency(target_ms=100.0, clock=clock)
    rng = random.Random(7)
    recorded: list[float] = []
    for step in range(200):  # 200 values over 100 s: ten 10 s slots, across two minutes
        value = rng.lognormvariate(math.log(40.0), 0.8)
        latency.record(value, error=step % 10 == 0)
        recorded.append(value)
        clock.now += 0.5
        if step % 23 == 0:  # reads in between close slots too
            hour = latency.snapshot(3600)
            assert hour.count == len(recorded)
            assert hour.max == max(recorded)
    hour, five = latency.snapshot(3600), latency.snapshot(300)
    assert hour.count == five.count == 200
    assert hour.over_target == five.over_target == sum(v > 100.0 for v in recorded)
    assert hour.errors == five.errors == 20
    assert hour.p95 == five.p95
    clock.now += 600  # past the five minutes; every slot closed by this read
    assert latency.snapshot(300).count == 0
    assert (latency.snapshot(3600).count, latency.snapshot(3600).max) == (200, max(recorded))
    latency.record(1.0)
    assert latency.snapshot(3600).count == 201


def test_reused_slot_starts_empty() -> None:
    clock = FakeClock()
    latency = SlidingLatency(clock=clock)
    latency.record(900.0)
    clock.now += 300  # same position on the 10 s ring, 30 slots later
    latency.record(1.0)

    stats = latency.snapshot(300)
    assert (stats.count, stats.max) == (1, 1.0)


def test_empty_window_and_extreme_values() -> None:
    latency = SlidingLatency(clock=FakeClock())
    assert latency.snapshot(60).count == 0

    latency.record(-3.0)
    latency.record(120_000.0)  # beyond the histogram's 60 s range

    stats = latency.snapshot(60)
    assert stats.count == 2
    assert stats.max == 120_000.0
    assert stats.p99 == pytest.approx(60_000.0, rel=0.01)


@pytest.mark.parametrize("window_s", [0, 15, 3601, 7200])
def test_unsupported_window_is_rejected(window_s: int) -> None:
    with pytest.raises(ValueError, match="no ring"):
        SlidingLatency().snapshot(window_s)


def test_values_held_back_as_counts_are_all_seen_by_every_read() -> None:
    """Recordings are held as a count per value until a read: reads between recordings, in
    the same slot and after it closed, see each value exactly once."""
    clock = FakeClock()
    latency = SlidingLatency(clock=clock)
    for _ in range(500):
        latency.record(0.25)  # the same microseconds again and again
    first = latency.snapshot(60)
    assert (first.count, first.p50) == (500, pytest.approx(0.25, rel=0.01))
    for _ in range(300):
        latency.record(4.0)  # same slot, after a read
    second = latency.snapshot(60)
    assert (second.count, second.max) == (800, 4.0)
    assert second.p95 == pytest.approx(4.0, rel=0.01)
    clock.now += 10  # the slot closes into its minute at the next recording
    latency.record(1.0)
    assert latency.snapshot(60).count == 801
    assert latency.snapshot(3600).count == 801
    clock.now += 3600 * 2  # everything expires, held values included
    assert latency.snapshot(3600).count == 0
