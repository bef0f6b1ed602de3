"""Sliding-window latency quantiles on HdrHistogram.

Averages hide the tail that P95 budgets are about, and sorting raw samples per request is too
slow, so latencies go into HdrHistograms (fixed memory, 2 significant digits, mergeable).
Time is cut into slots on two rings: 10 s slots (30 of them) serve the 1- and 5-minute
windows, 60 s slots (60 of them) serve the hour. A snapshot merges the live slots of one ring.
Expired slots are dropped lazily — on the next write to their position or the next snapshot —
so recording never scans anything.

A value is recorded once, in its 10 s slot, and held back as a count per value until the slot
is read: a histogram's `record_value` costs about 1.5 µs, a measurable share of a cache hit,
and latencies in whole microseconds repeat. Each 10 s slot is added to the 60 s slot of its
minute when it closes: at the first recording or read in a later slot. Until then the hour
reads it where it is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

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
    errors: int = 0


@dataclass(frozen=True, slots=True)
class Window:
    """One window of one process: the merged histogram (microseconds) and exact counters.

    Windows of several processes combine by adding: histogram counts bucket by bucket,
    ``over_target`` and ``errors`` as integers, ``max`` by taking the larger. Quantiles are
    then read from the sum, never averaged.
    """

    window_s: int
    histogram: HdrHistogram | None
    over_target: int
    errors: int
    max: float

    def __add__(self, other: Window) -> Window:
        if self.histogram is None:
            merged = other.histogram
        elif other.histogram is None:
            merged = self.histogram
        else:
            merged = _new_histogram()
            merged.add(self.histogram)
            merged.add(other.histogram)
        return Window(
            self.window_s,
            merged,
            self.over_target + other.over_target,
            self.errors + other.errors,
            max(self.max, other.max),
        )

    def stats(self) -> WindowStats:
        merged = self.histogram
        if merged is None or merged.get_total_count() == 0:
            return WindowStats(self.window_s, 0, 0.0, 0.0, 0.0, 0.0, 0, 0)
        values = merged.get_percentile_to_value_dict(list(_PERCENTILES))
        # HdrHistogram reports the top of a value's bucket; no quantile exceeds the exact max.
        p50, p95, p99 = (min(values[p] / 1000.0, self.max) for p in _PERCENTILES)
        count = merged.get_total_count()
        return WindowStats(
            self.window_s, count, p50, p95, p99, self.max, self.over_target, self.errors
        )

    def encode(self) -> dict[str, Any]:
        """A JSON-ready form (HdrHistogram's compressed base64 encoding)."""
        return {
            "windowS": self.window_s,
            "histogram": self.histogram.encode().decode("ascii") if self.histogram else None,
            "overTarget": self.over_target,
            "errors": self.errors,
            "max": self.max,
        }

    @classmethod
    def decode(cls, data: dict[str, Any]) -> Window:
        encoded = data.get("histogram")
        histogram = HdrHistogram.decode(encoded.encode("ascii")) if encoded else None
        return cls(
            int(data["windowS"]),
            histogram,
            int(data["overTarget"]),
            int(data["errors"]),
            float(data["max"]),
        )


class _Ring:
    """Fixed-size circular list of per-slot histograms, indexed by ``now // slot_s``."""

    __slots__ = (
        "slot_s", "size", "epochs", "histograms", "over", "errors", "maxima", "held", "held_at"
    )  # fmt: skip

    def __init__(self, slot_s: int, size: int) -> None:
        self.slot_s = slot_s
        self.size = size
        self.epochs: list[int | None] = [None] * size
        self.histograms: list[HdrHistogram | None] = [None] * size
        self.over = [0] * size
        self.errors = [0] * size
        self.maxima = [0.0] * size
        # Values recorded into slot `held_at` and not yet added to its histogram, with their
        # counts: a dict increment per request, `record_value` once per distinct value when
        # the slot is read (`flush`), instead of `record_value` per request.
        self.held: dict[int, int] = {}
        self.held_at = -1

    def record(self, epoch: int, micros: int, ms: float, over: bool, error: bool) -> None:
        index = self._slot(epoch)
        if index != self.held_at:
            self.flush()
            self.held_at = index
        held = self.held
        held[micros] = held.get(micros, 0) + 1
        self.over[index] += over
        self.errors[index] += error
        if ms > self.maxima[index]:
            self.maxima[index] = ms

    def flush(self) -> None:
        """Add the values held back to their slot's histogram (before any read of it)."""
        if not self.held:
            return
        histogram = self.histograms[self.held_at]
        if histogram is not None:  # None: the slot expired meanwhile, and its values with it
            for value, count in self.held.items():
                histogram.record_value(value, count)
        self.held.clear()

    def absorb(self, epoch: int, other: _Ring, other_index: int) -> None:
        """Add slot `other_index` of a finer ring into this ring's slot `epoch` (which
        covers it), unless a later epoch already took that position."""
        other.flush()
        index = epoch % self.size
        current = self.epochs[index]
        if current is not None and current > epoch:
            return  # older than this ring's span: no window holds it any more
        histogram = other.histograms[other_index]
        if histogram is None:
            return
        target = self.histograms[self._slot(epoch)]
        assert target is not None
        target.add(histogram)
        self.over[index] += other.over[other_index]
        self.errors[index] += other.errors[other_index]
        self.maxima[index] = max(self.maxima[index], other.maxima[other_index])

    def _slot(self, epoch: int) -> int:
        """The position of `epoch`, emptied first if it held an older one."""
        index = epoch % self.size
        if self.epochs[index] != epoch or self.histograms[index] is None:
            if index == self.held_at:
                self.flush()  # the values of the epoch this position held go with it
            # A new histogram is cheaper than HdrHistogram.reset(), which walks every counter.
            self.histograms[index] = _new_histogram()
            self.epochs[index] = epoch
            self.over[index] = 0
            self.errors[index] = 0
            self.maxima[index] = 0.0
        return index

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
        self._fine = _Ring(10, 30)
        self._coarse = _Ring(60, 60)
        self._rings = (self._fine, self._coarse)
        self._open: int | None = None  # the 10 s slot not yet added to its minute
        self._recorded = 0
        # Per window: the merge of its closed slots (it changes once per slot), and the
        # last window and encoding handed out (unchanged until a record or a new slot).
        self._closed: dict[int, tuple[int, Window]] = {}
        self._last: dict[int, tuple[tuple[int, int], Window, dict[str, Any] | None]] = {}

    def record(self, ms: float, *, error: bool = False) -> None:
        """Record one latency in milliseconds (clamped to 0..60 s for the quantiles);
        ``error`` counts it among the window's failed requests too."""
        epoch = int(self._clock() // self._fine.slot_s)
        if epoch != self._open:
            self._close_open_slot()
            self._open = epoch
        micros = min(round(ms * 1000.0), HIGHEST_US) if ms > 0 else 0
        over = self.target_ms is not None and ms > self.target_ms
        self._fine.record(epoch, micros, ms, over, error)
        self._recorded += 1

    def _close_open_slot(self) -> None:
        """Add the open 10 s slot to the 60 s slot of its minute (once: it is then closed)."""
        if self._open is None:
            return
        index = self._open % self._fine.size
        if self._fine.epochs[index] == self._open:
            minute = self._open * self._fine.slot_s // self._coarse.slot_s
            self._coarse.absorb(minute, self._fine, index)
        self._open = None

    def window(self, window_s: int) -> Window:
        """The last ``window_s`` seconds as one merged histogram with its exact counters:
        what another process needs to merge this window with its own (see ``snapshot``).

        Published every second for every route, so it merges the closed slots once per slot
        and, between records, hands out the same window again.
        """
        return self._window(window_s)[1]

    def encoded_window(self, window_s: int) -> dict[str, Any]:
        """``window(window_s).encode()``, encoded again only when the window changed."""
        key, window, encoded = self._window(window_s)
        if encoded is None:
            encoded = window.encode()
            self._last[window_s] = (key, window, encoded)
        return encoded

    def _window(self, window_s: int) -> tuple[tuple[int, int], Window, dict[str, Any] | None]:
        ring = self._ring_for(window_s)
        now = self._clock()
        if self._open is not None and int(now // self._fine.slot_s) != self._open:
            self._close_open_slot()
        current = int(now // ring.slot_s)
        # (A slot closed since the last read moved from the 10 s ring to its minute: the
        # hour's sum is the same, so a window cached under this key still holds.)
        key = (current, self._recorded)
        last = self._last.get(window_s)
        if last is not None and last[0] == key:
            return last
        closed = self._closed.get(window_s)
        if closed is None or closed[0] != current:
            closed = (current, self._merge(ring, window_s, current, closed_only=True))
            self._closed[window_s] = closed
        window = closed[1] + self._merge(ring, window_s, current, closed_only=False)
        if ring is self._coarse and self._open is not None:
            window = window + self._open_slot(window_s)  # this minute's slot still open
        self._last[window_s] = (key, window, None)
        return key, window, None

    def _open_slot(self, window_s: int) -> Window:
        """The open 10 s slot, not yet added to its minute, as a window of `window_s`."""
        fine = self._fine
        assert self._open is not None
        fine.flush()
        index = self._open % fine.size
        histogram = fine.histograms[index]
        if fine.epochs[index] != self._open or histogram is None:
            return Window(window_s, None, 0, 0, 0.0)
        copy = _new_histogram()  # the slot goes on recording; a window does not change
        copy.add(histogram)
        return Window(window_s, copy, fine.over[index], fine.errors[index], fine.maxima[index])

    def _merge(self, ring: _Ring, window_s: int, current: int, *, closed_only: bool) -> Window:
        """The closed slots of the window, or its current slot alone."""
        ring.flush()
        merged: HdrHistogram | None = None
        over = errors = 0
        maximum = 0.0
        for index in ring.live(current * ring.slot_s, window_s // ring.slot_s):
            histogram = ring.histograms[index]
            if histogram is None or (ring.epochs[index] == current) == closed_only:
                continue
            if merged is None:
                merged = _new_histogram()
            merged.add(histogram)
            over += ring.over[index]
            errors += ring.errors[index]
            maximum = max(maximum, ring.maxima[index])
        return Window(window_s, merged, over, errors, maximum)

    def snapshot(self, window_s: int) -> WindowStats:
        """Summarise the last ``window_s`` seconds (a multiple of 10 up to 300, or of 60 up
        to 3600).

        Raises:
            ValueError: No ring can serve that window.
        """
        return self.window(window_s).stats()

    def _ring_for(self, window_s: int) -> _Ring:
        for ring in self._rings:
            if window_s > 0 and window_s % ring.slot_s == 0 and window_s <= ring.slot_s * ring.size:
                return ring
        raise ValueError(f"no ring serves a {window_s} s window")
