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
