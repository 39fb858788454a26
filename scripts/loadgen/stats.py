"""Histogram and series arithmetic for the load generator's result (pure, tested on its own)."""
from __future__ import annotations

import math
from typing import Iterable

from hdrh.histogram import HdrHistogram

# Values are recorded in microseconds: 1 µs .. 1 hour at 3 significant digits.
HIST_MAX_US = 3_600_000_000
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99_9", 99.9))


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, HIST_MAX_US, 3)


def record_s(hist: HdrHistogram, seconds: float) -> None:
    """Record a duration in seconds (clamped to the histogram's range, never lost)."""
    hist.record_value(min(HIST_MAX_US, max(1, int(round(seconds * 1e6)))))


def summary_ms(hist: HdrHistogram) -> dict:
    """Percentiles, max, mean and count in milliseconds; None values when nothing was recorded."""
    count = hist.get_total_count()
    if count == 0:
        return {name: None for name, _ in PERCENTILES} | {"max": None, "mean": None, "count": 0}
    out = {name: hist.get_value_at_percentile(p) / 1000.0 for name, p in PERCENTILES}
    out["max"] = hist.get_max_value() / 1000.0
    out["mean"] = round(hist.get_mean_value() / 1000.0, 3)
    out["count"] = count
    return out


class PerSecond:
    """Counts per whole second since the start; grows as needed, negative offsets go to second 0."""

    def __init__(self) -> None:
        self.counts: list[int] = []

    def add(self, offset_s: float, n: int = 1) -> None:
        i = max(0, int(offset_s))
        if i >= len(self.counts):
            self.counts.extend([0] * (i + 1 - len(self.counts)))
        self.counts[i] += n

    def series(self, length: int | None = None) -> list[int]:
        if length is None:
            return list(self.counts)
        return (self.counts + [0] * length)[:length] if length > len(self.counts) else list(self.counts)


def rate(count: int, seconds: float) -> float | None:
    return round(count / seconds, 3) if seconds > 0 else None


def mean_and_cov(values: Iterable[float]) -> tuple[float | None, float | None]:
    """Mean and coefficient of variation (population stdev / mean) of a series."""
    vals = list(values)
    if not vals:
        return None, None
    mean = sum(vals) / len(vals)
    if mean == 0:
        return 0.0, None
    var = sum((v - mean) ** 2 for v in vals) / len(vals)
    return mean, math.sqrt(var) / mean
