"""Sliding-window latency quantiles on HdrHistogram.

Averages hide the tail that P95 budgets are about, and sorting raw samples per request is too
slow, so latencies go into HdrHistograms (fixed memory, 2 significant digits, mergeable).
Time is cut into slots on two rings: 10 s slots (30 of them) serve the 1- and 5-minute
windows, 60 s slots (60 of them) serve the hour. A snapshot merges the live slots of one ring.
Expired slots are dropped lazily — on the next write to their position or the next snapshot —
so recording never scans anything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from hdrh.histogram import HdrHistogram

logger = logging.getLogger(__name__)

LOWEST_US = 1
HIGHEST_US = 60_000_000
SIGNIFICANT_DIGITS = 2
WINDOWS_S = (60, 300, 3600)
_PERCENTILES = (50.0, 95.0, 99.0)


def _new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


@dataclass(frozen=True, slots=True)
class WindowStats:
    """Latency summary of one window, in milliseconds.

    Quantiles carry HdrHistogram's ~1% resolution; ``count``, ``max`` and ``over_target`` are
    exact. ``over_target`` counts values strictly above the target the ``SlidingLatency`` was
    built with (always 0 without one) — the input to error-budget burn rates.
    """

    window_s: int
    count: int
    p50: float
    p95: float
    p99: float
    max: float
    over_target: int


class _Ring:
    """Fixed-size circular list of per-slot histograms, indexed by ``now // slot_s``."""

    __slots__ = ("slot_s", "size", "epochs", "histograms", "over", "maxima")

    def __init__(self, slot_s: int, size: int) -> None:
        self.slot_s = slot_s
        self.size = size
        self.epochs: list[int | None] = [None] * size
        self.histograms: list[HdrHistogram | None] = [None] * size
        self.over = [0] * size
        self.maxima = [0.0] * size

    def record(self, now: float, micros: int, ms: float, over: bool) -> None:
        epoch = int(now // self.slot_s)
        index = epoch % self.size
        histogram = self.histograms[index]
        if self.epochs[index] != epoch or histogram is None:
            # A new histogram is cheaper than HdrHistogram.reset(), which walks every counter.
            histogram = self.histograms[index] = _new_histogram()
            self.epochs[index] = epoch
            self.over[index] = 0
            self.maxima[index] = 0.0
        histogram.record_value(micros)
        self.over[index] += over
        if ms > self.maxima[index]:
            self.maxima[index] = ms

    def live(self, now: float, slots: int) -> Iterator[int]:
        """Indices of slots inside the last ``slots`` epochs; frees expired ones on the way."""
        current = int(now // self.slot_s)
        for index, epoch in enumerate(self.epochs):
            if epoch is None:
                continue
            if current - slots < epoch <= current:
                yield index
            elif epoch <= current - self.size:
                self.epochs[index] = None
                self.histograms[index] = None


class SlidingLatency:
    """Latency quantiles over the last minute, five minutes and hour.

    A window covers the current slot plus the slots before it, so a 60 s window reports
    between the last 50 and 60 seconds (10 s slots) and the hour between 59 and 60 minutes.

    Args:
        target_ms: Values strictly above this are counted exactly per slot, so breach counts
            do not inherit the histogram's rounding.
        clock: Monotonic seconds; injectable so tests can move time.
    """

    def __init__(
        self,
        *,
        target_ms: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target_ms = target_ms
        self._clock = clock
        self._rings = (_Ring(10, 30), _Ring(60, 60))

    def record(self, ms: float) -> None:
        """Record one latency in milliseconds (clamped to 0..60 s for the quantiles)."""
        now = self._clock()
        micros = min(round(ms * 1000.0), HIGHEST_US) if ms > 0 else 0
        over = self.target_ms is not None and ms > self.target_ms
        for ring in self._rings:
            ring.record(now, micros, ms, over)

    def snapshot(self, window_s: int) -> WindowStats:
        """Summarise the last ``window_s`` seconds (a multiple of 10 up to 300, or of 60 up
        to 3600).

        Raises:
            ValueError: No ring can serve that window.
        """
        ring = self._ring_for(window_s)
        merged: HdrHistogram | None = None
        over = 0
        maximum = 0.0
        for index in ring.live(self._clock(), window_s // ring.slot_s):
            histogram = ring.histograms[index]
            if histogram is None:
                continue
            if merged is None:
                merged = _new_histogram()
            merged.add(histogram)
            over += ring.over[index]
            maximum = max(maximum, ring.maxima[index])
        if merged is None or merged.get_total_count() == 0:
            return WindowStats(window_s, 0, 0.0, 0.0, 0.0, 0.0, 0)
        values = merged.get_percentile_to_value_dict(list(_PERCENTILES))
        # HdrHistogram reports the top of a value's bucket; no quantile exceeds the exact max.
        p50, p95, p99 = (min(values[p] / 1000.0, maximum) for p in _PERCENTILES)
        return WindowStats(window_s, merged.get_total_count(), p50, p95, p99, maximum, over)

    def _ring_for(self, window_s: int) -> _Ring:
        for ring in self._rings:
            if window_s > 0 and window_s % ring.slot_s == 0 and window_s <= ring.slot_s * ring.size:
                return ring
        raise ValueError(f"no ring serves a {window_s} s window")
