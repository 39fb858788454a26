"""sweep: saturation search on simulated logs, verdicts, cumulative-to-rate, stability and repeats."""
from __future__ import annotations

import math

import pytest

from scripts import sweep
from scripts.errors import BadInput


def simulated_log(capacity: float, *, error_above: float | None = None, backlog: bool = False):
    """A log that integrates min(offered, capacity) per second."""
    def step(offered: float) -> dict:
        over = offered > capacity
        return {"offered": offered, "integrated_qps": min(offered, capacity) * (0.99 if not over else 1.0),
                "error_rate": 0.05 if (error_above is not None and offered > error_above) else 0.0,
                "backlog_growth_per_s": (offered - capacity) if (backlog and over) else 0.0}
    return step


def search(fake, plan=sweep.SearchPlan()) -> list[dict]:
    history: list[dict] = []
    while (rate := sweep.next_rate(history, plan)) is not None:
        history.append(fake(rate))
        assert len(history) <= plan.max_steps
    return history


@pytest.mark.parametrize("capacity", [60, 137, 480, 1000, 1700, 9000])
def test_search_finds_capacity_within_resolution(capacity):
    plan = sweep.SearchPlan(start=50, factor=2, resolution=0.05, max_steps=20)
    history = search(simulated_log(capacity), plan)
    summary = sweep.search_summary(history, plan)
    assert summary["stopped"].startswith("converged")
    assert capacity * 0.95 * 0.99 * 0.95 <= summary["max_sustainable_qps"] <= capacity
    assert summary["first_unsustained_offered"] > summary["offered_at_max"]
    assert (summary["first_unsustained_offered"] - summary["offered_at_max"]) / summary["offered_at_max"] <= 0.05
    assert [s["offered"] for s in summary["steps"]] == sorted(s["offered"] for s in history)
    assert all(s["reasons"] == [] for s in summary["steps"] if s["sustained"])


def test_search_steps_geometrically_first():
    history = search(simulated_log(10_000), sweep.SearchPlan(start=50, factor=2, max_rate=800, max_steps=20))
    assert [s["offered"] for s in history] == [50, 100, 200, 400, 800]
    assert sweep.search_summary(history, sweep.SearchPlan(max_rate=800))["stopped"] == "reached the maximum offered rate"


def test_errors_and_backlog_stop_the_search():
    plan = sweep.SearchPlan(start=100, max_steps=20)
    errs = sweep.search_summary(search(simulated_log(10_000, error_above=300), plan), plan)
    assert 285 <= errs["offered_at_max"] <= 300
    failed = [s for s in errs["steps"] if not s["sustained"]]
    assert any("errors" in r for s in failed for r in s["reasons"])

    bl = {"offered": 500, "integrated_qps": 499, "backlog_growth_per_s": 50.0}
    ok, reasons = sweep.verdict(bl)
    assert not ok and reasons == ["backlog grows 50/s"]


def test_nothing_sustained_steps_down_then_gives_up():
    plan = sweep.SearchPlan(start=100, factor=2, max_steps=20)
    history = search(simulated_log(0.0), plan)
    assert [s["offered"] for s in history] == [100, 50, 25, 12.5]
    summary = sweep.search_summary(history, plan)
    assert summary["max_sustainable_qps"] is None and summary["stopped"] == "no offered rate was sustained"


def test_low_capacity_found_by_stepping_down():
    plan = sweep.SearchPlan(start=100, factor=2, max_steps=20)
    summary = sweep.search_summary(search(simulated_log(30), plan), plan)
    assert 25 <= summary["offered_at_max"] <= 30 / 0.95  # 95 % of offered still counts as sustained


def test_client_bound_stops_and_is_never_sustained():
    history = [{"offered": 100, "integrated_qps": 100}, {"offered": 200, "integrated_qps": 200, "client_bound": True}]
    assert sweep.next_rate(history) is None
    summary = sweep.search_summary(history)
    assert summary["max_sustainable_qps"] == 100 and summary["stopped"].startswith("client-bound")
    assert summary["steps"][1]["sustained"] is False


def test_step_limit():
    plan = sweep.SearchPlan(start=10, factor=1.5, max_steps=3, max_rate=1e6)
    history = search(simulated_log(1e9), plan)
    assert len(history) == 3
    assert sweep.search_summary(history, plan)["stopped"] == "not converged"


@pytest.mark.parametrize("plan", [sweep.SearchPlan(start=0), sweep.SearchPlan(factor=1), sweep.SearchPlan(max_rate=1),
                                  sweep.SearchPlan(resolution=0), sweep.SearchPlan(max_steps=0),
                                  sweep.SearchPlan(start=float("nan"))])
def test_bad_plans(plan):
    with pytest.raises(BadInput):
        sweep.next_rate([], plan)


@pytest.mark.parametrize("step", [{"offered": 0, "integrated_qps": 0}, {"offered": 10},
                                  {"offered": 10, "integrated_qps": float("nan")}, {"offered": "10", "integrated_qps": 1},
                                  {"offered": 10, "integrated_qps": 1, "error_rate": None}])
def test_bad_steps(step):
    with pytest.raises(BadInput):
        sweep.verdict(step)


def test_verdict_boundaries():
    assert sweep.verdict({"offered": 100, "integrated_qps": 95.0})[0]
    assert not sweep.verdict({"offered": 100, "integrated_qps": 94.9})[0]
    assert sweep.verdict({"offered": 100, "integrated_qps": 100, "error_rate": 0.01})[0]
    assert not sweep.verdict({"offered": 100, "integrated_qps": 100, "error_rate": 0.0101})[0]


# --- series -------------------------------------------------------------------------------------------

def test_rates_from_cumulative_interpolates():
    samples = [(0, 1000), (1.5, 1150), (3.0, 1300), (4.5, 1300), (6.0, 1600)]
    rates = sweep.rates_from_cumulative(samples, 0, 6, bucket_s=1)
    assert rates == pytest.approx([100, 100, 100, 0, 100, 200])
    assert sweep.rates_from_cumulative(samples, 0, 6, bucket_s=3) == pytest.approx([100, 100])


@pytest.mark.parametrize("samples, start, end", [([(0, 1)], 0, 1), ([(1, 1), (5, 2)], 0, 4), ([(0, 1), (5, 2)], 0, 6),
                                                  ([(0, 5), (5, 2)], 0, 5)])
def test_rates_from_cumulative_rejects(samples, start, end):
    with pytest.raises(BadInput):
        sweep.rates_from_cumulative(samples, start, end)


def test_steady_state_flat_and_noisy():
    flat = sweep.steady_state([100.0] * 30)
    assert flat["mean"] == 100 and flat["cov"] == 0 and not flat["unstable"] and flat["slope_per_s"] == 0
    noisy = sweep.steady_state([50, 150] * 15)
    assert noisy["cov"] == pytest.approx(0.5) and noisy["unstable"]


def test_steady_state_buckets_smooth_batch_publication():
    lumpy = [0, 300, 150] * 20            # a checkpoint every 1.5 s: lumpy per second, steady per 3 s
    assert sweep.steady_state(lumpy)["unstable"]
    smooth = sweep.steady_state(lumpy, bucket=3)
    assert smooth["cov"] == 0 and smooth["mean"] == 150 and smooth["n"] == 20


def test_steady_state_skip_and_trend():
    series = [0, 0, 0] + [100 + i for i in range(20)]
    st = sweep.steady_state(series, skip=3)
    assert st["n"] == 20 and st["slope_per_s"] == pytest.approx(1.0)
    assert sweep.steady_state([0, 0, 0])["unstable"]  # mean 0: nothing integrated is never "stable"
    with pytest.raises(BadInput):
        sweep.steady_state([1])


def test_repeats():
    r = sweep.repeats([100, 110, 90, None])
    assert r["n"] == 4 and r["used"] == 3 and r["failed"] == 1
    assert r["median"] == 100 and r["min"] == 90 and r["max"] == 110 and r["spread"] == 0.2
    assert r["cov"] == pytest.approx(math.sqrt(200 / 3) / 100, abs=1e-4)
    assert sweep.repeats([None])["median"] is None
    assert sweep.repeats([5])["cov"] is None
