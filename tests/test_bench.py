"""Composition of phases: repeats are combined honestly."""
from __future__ import annotations

from scripts import bench


def run(qps, status="ok", reason=""):
    return {"status": status, "reason": reason, "qps": qps, "entries_integrated": 100, "window_s": 10.0}


def test_single_run_is_passed_through():
    r = run(50.0)
    assert bench.combine_repeats([r], 1) is r


def test_median_run_and_spread():
    out = bench.combine_repeats([run(90.0), run(110.0), run(100.0)], 3)
    assert out["qps"] == 100.0
    stats = out["repeat_stats"]
    assert (stats["n"], stats["median_qps"], stats["min_qps"], stats["max_qps"]) == (3, 100.0, 90.0, 110.0)
    assert 0.08 < stats["cov"] < 0.09
    assert [r["qps"] for r in out["repeats"]] == [90.0, 110.0, 100.0]


def test_any_failed_repeat_fails_the_system():
    out = bench.combine_repeats([run(100.0), run(None, "failed", "component died during the run: tesseract")], 3)
    assert out["status"] == "failed" and out["reason"].startswith("repeat 2 of 3 failed: component died")


def test_step_of_a_measured_run():
    obs = {"offered_qps": 400, "qps": 380.0, "status": "ok", "window_s": 20.0, "entries_integrated": 7600,
           "accepted_in_window": 8000, "loadgen_result": {"error_rate": 0.02, "latency_ms": {"p99": 12.0}},
           "resources": {"labels": ["client-bound"], "system_cpu_seconds": 10.0}}
    step = bench.step_of(obs)
    assert step["offered"] == 400.0 and step["integrated_qps"] == 380.0 and step["error_rate"] == 0.02
    assert step["backlog_growth_per_s"] == 20.0 and not step["client_bound"] and step["cpu_cores"] == 0.5
    assert bench.step_of({**obs, "qps": 200.0})["client_bound"]  # fell short while the generator lagged


def test_step_of_a_failed_run_has_zero_throughput():
    step = bench.step_of({"offered_qps": 100, "qps": None, "status": "failed", "reason": "x"})
    assert step["integrated_qps"] == 0.0 and step["backlog_growth_per_s"] == 0.0


def test_chart_inputs_only_from_sweeps():
    doc = {"tier": "small", "systems": {
        "trillian": {"status": "ok", "qps": 90.0, "sweep": {"steps": [{"offered": 100}], "max_sustainable_qps": 90.0},
                     "cost": {"provisioned": {"derived": {"usd_per_million_entries": 0.9}}}},
        "tesseract": {"status": "ok", "qps": 100.0}}}
    steps, maxima, costs = bench.chart_inputs(doc)
    assert list(steps) == ["trillian"] and maxima == {"trillian": 90.0}
    assert costs == [{"system": "trillian", "tier": "small", "qps": 90.0, "usd_per_million": 0.9}]
