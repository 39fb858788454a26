"""Saturation search, steady-state stability and repeats: pure functions over plain dicts (issue 4).

A *step* is one measured run at one offered rate, described by a dict:

    {"offered": 400.0,            # offered add-chain rate (/s)
     "integrated_qps": 396.1,     # growth of the verified signed tree over the window / window length
     "error_rate": 0.0,           # non-OK responses / responses (loadgen result "error_rate")
     "backlog_growth_per_s": 0.3, # optional: d(acknowledged - integrated)/dt over the window
     "client_bound": False}       # optional: the load generator, not the log, was the limit

`verdict(step)` says whether the log sustained it; `next_rate(history)` says which rate to try next
(geometric steps up, then bisection between the best sustained and the first failed rate) or None
when the search is done; `search_summary(history)` names the maximum sustainable QPS with every
step's numbers as evidence. `rates_from_cumulative`, `steady_state` and `repeats` turn tree-size
samples into per-second rates, rate series into stability figures, and repeated runs into a median
and a spread.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Iterable, Sequence

from scripts.errors import BadInput

QPS_RATIO = 0.95          # integrated QPS below this share of offered: not sustained
MAX_ERROR_RATE = 0.01     # more errors than this: not sustained
BACKLOG_TOLERANCE = 0.02  # backlog growing faster than this share of offered per second: not sustained
UNSTABLE_COV = 0.10       # coefficient of variation above this: the window is unstable


@dataclass(frozen=True)
class SearchPlan:
    start: float = 50.0        # first offered rate
    factor: float = 2.0        # geometric step while everything is sustained
    max_rate: float = 20_000.0  # never offer more than this
    resolution: float = 0.05   # stop bisecting when (fail - ok) / ok is at most this
    max_steps: int = 12        # hard cap on steps, whatever happens

    def validate(self) -> None:
        if not (math.isfinite(self.start) and self.start > 0):
            raise BadInput(f"search start rate {self.start!r}: must be positive")
        if not (math.isfinite(self.factor) and self.factor > 1):
            raise BadInput(f"search step factor {self.factor!r}: must be > 1")
        if not (math.isfinite(self.max_rate) and self.max_rate >= self.start):
            raise BadInput(f"search max rate {self.max_rate!r}: must be >= start rate {self.start}")
        if not (0 < self.resolution < 1):
            raise BadInput(f"search resolution {self.resolution!r}: between 0 and 1")
        if not (isinstance(self.max_steps, int) and 1 <= self.max_steps <= 100):
            raise BadInput(f"search max steps {self.max_steps!r}: 1..100")


def _number(step: dict, key: str, *, default: float | None = None) -> float:
    value = step.get(key, default)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadInput(f"step {key!r}: need a finite number, got {value!r}")
    return float(value)


def verdict(step: dict, *, qps_ratio: float = QPS_RATIO, max_error_rate: float = MAX_ERROR_RATE,
            backlog_tolerance: float = BACKLOG_TOLERANCE) -> tuple[bool, list[str]]:
    """(sustained, reasons it was not). A client-bound step is never counted as sustained."""
    offered = _number(step, "offered")
    if offered <= 0:
        raise BadInput(f"step offered rate {offered}: must be positive")
    integrated = _number(step, "integrated_qps")
    errors = _number(step, "error_rate", default=0.0)
    backlog = _number(step, "backlog_growth_per_s", default=0.0)
    reasons = []
    if integrated < qps_ratio * offered:
        reasons.append(f"integrated {integrated:g}/s < {qps_ratio:.0%} of offered {offered:g}/s")
    if errors > max_error_rate:
        reasons.append(f"errors {errors:.2%} > {max_error_rate:.0%}")
    if backlog > backlog_tolerance * offered:
        reasons.append(f"backlog grows {backlog:g}/s")
    if step.get("client_bound"):
        reasons.append("client-bound: the load generator was the limit")
    return not reasons, reasons


def _bounds(history: Sequence[dict]) -> tuple[dict | None, dict | None]:
    """Best sustained step, and the lowest failed step above it."""
    ok = [s for s in history if verdict(s)[0]]
    best = max(ok, key=lambda s: s["offered"]) if ok else None
    floor = best["offered"] if best else 0.0
    failed = [s for s in history if not verdict(s)[0] and s["offered"] > floor]
    first_fail = min(failed, key=lambda s: s["offered"]) if failed else None
    return best, first_fail


def next_rate(history: Sequence[dict], plan: SearchPlan = SearchPlan()) -> float | None:
    """The next offered rate to try, or None when the search has converged or must stop."""
    plan.validate()
    if not history:
        return plan.start
    if len(history) >= plan.max_steps:
        return None
    if any(s.get("client_bound") for s in history):
        return None  # more load would only measure the client
    best, fail = _bounds(history)
    if fail is None:
        top = max(s["offered"] for s in history)
        if top >= plan.max_rate:
            return None
        return min(plan.max_rate, top * plan.factor)
    if best is None:
        # Even the lowest rate failed: step down until something holds (or give up near zero).
        low = fail["offered"] / plan.factor
        return low if low >= plan.start / plan.factor ** 3 else None
    lo, hi = best["offered"], fail["offered"]
    if (hi - lo) / lo <= plan.resolution:
        return None
    mid = round((lo + hi) / 2, 1)
    tried = {round(s["offered"], 1) for s in history}
    return None if mid in tried else mid


def search_summary(history: Sequence[dict], plan: SearchPlan = SearchPlan()) -> dict:
    """Maximum sustainable QPS with its evidence: every step, its verdict and reasons."""
    steps = []
    for s in sorted(history, key=lambda s: s["offered"]):
        ok, reasons = verdict(s)
        steps.append({**s, "sustained": ok, "reasons": reasons})
    best, fail = _bounds(history)
    if any(s.get("client_bound") for s in history):
        stopped = "client-bound: the generator, not the log, was the limit"
    elif fail is None:
        stopped = "reached the maximum offered rate" if history and max(
            s["offered"] for s in history) >= plan.max_rate else "not converged"
    elif best is None:
        stopped = "no offered rate was sustained"
    elif (fail["offered"] - best["offered"]) / best["offered"] <= plan.resolution:
        stopped = f"converged within {plan.resolution:.0%}"
    else:
        stopped = "step limit reached" if len(history) >= plan.max_steps else "not converged"
    return {
        "max_sustainable_qps": round(best["integrated_qps"], 3) if best else None,
        "offered_at_max": best["offered"] if best else None,
        "first_unsustained_offered": fail["offered"] if fail else None,
        "stopped": stopped,
        "steps": steps,
    }


# --- series -----------------------------------------------------------------------------------------


def rates_from_cumulative(samples: Sequence[Sequence[float]], start: float, end: float,
                          bucket_s: float = 1.0) -> list[float]:
    """Per-bucket rates from (time, cumulative count) samples (e.g. tree size), linearly interpolated
    at bucket edges, over [start, end). Never averages a cumulative counter."""
    if bucket_s <= 0 or end <= start:
        raise BadInput("rates_from_cumulative: need bucket_s > 0 and end > start")
    pts = sorted((float(t), float(v)) for t, v in samples)
    if len(pts) < 2 or pts[0][0] > start or pts[-1][0] < end:
        raise BadInput("rates_from_cumulative: samples must cover the whole window")
    if any(b[1] < a[1] for a, b in zip(pts, pts[1:])):
        raise BadInput("rates_from_cumulative: a cumulative counter went down")

    def at(t: float) -> float:
        for (t0, v0), (t1, v1) in zip(pts, pts[1:]):
            if t0 <= t <= t1:
                return v0 if t1 == t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)
        raise AssertionError("covered above")

    n = int(math.floor((end - start) / bucket_s + 1e-9))
    edges = [start + i * bucket_s for i in range(n + 1)]
    values = [at(t) for t in edges]
    return [(b - a) / bucket_s for a, b in zip(values, values[1:])]


def rebucket(series: Sequence[float], bucket: int) -> list[float]:
    """Mean per-second rate over whole buckets of `bucket` seconds (a trailing partial bucket is dropped)."""
    if bucket < 1:
        raise BadInput("bucket must be >= 1 second")
    whole = len(series) // bucket
    return [sum(series[i * bucket:(i + 1) * bucket]) / bucket for i in range(whole)]


def steady_state(series: Sequence[float], *, skip: int = 0, bucket: int = 1,
                 threshold: float = UNSTABLE_COV) -> dict:
    """Stability of a per-second rate series: mean, stdev, CoV, linear trend; unstable above threshold.

    skip: leading seconds to drop (warmup, when the series includes it). bucket: average over buckets of
    this many seconds first — logs that publish in batches (TesseraCT checkpoints every 1.5 s) are
    lumpy at 1 s and should be judged over buckets longer than their publishing interval.
    """
    values = rebucket(list(series)[skip:], bucket)
    if len(values) < 2:
        raise BadInput(f"steady state needs at least 2 buckets, got {len(values)}")
    mean = statistics.fmean(values)
    stdev = statistics.pstdev(values)
    cov = stdev / mean if mean > 0 else None
    xs = range(len(values))
    x_mean = (len(values) - 1) / 2
    slope = sum((x - x_mean) * (y - mean) for x, y in zip(xs, values)) / sum((x - x_mean) ** 2 for x in xs)
    return {
        "n": len(values), "bucket_s": bucket, "mean": round(mean, 3), "stdev": round(stdev, 3),
        "cov": round(cov, 4) if cov is not None else None, "min": min(values), "max": max(values),
        "slope_per_s": round(slope / bucket, 4),
        "unstable": cov is None or cov > threshold, "threshold": threshold,
    }


def repeats(values: Iterable[float | None]) -> dict:
    """Median and spread of one figure over repeated runs; failed runs (None) are counted, not used."""
    vals = list(values)
    good = [float(v) for v in vals if v is not None]
    out = {"n": len(vals), "used": len(good), "failed": len(vals) - len(good), "values": good}
    if not good:
        return out | {"median": None, "min": None, "max": None, "spread": None, "cov": None}
    median = statistics.median(good)
    mean = statistics.fmean(good)
    return out | {
        "median": median, "min": min(good), "max": max(good),
        "spread": round((max(good) - min(good)) / median, 4) if median else None,  # (max - min) / median
        "cov": round(statistics.pstdev(good) / mean, 4) if len(good) > 1 and mean else None,
    }
