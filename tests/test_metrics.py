"""Resource arithmetic: cumulative counters differenced, RSS averaged, labels."""
from __future__ import annotations

import os
import time

import pytest

from scripts import costs, metrics

# (t, cumulative cpu seconds, rss bytes)
SERIES = [[0.0, 10.0, 100 * 2**20], [10.0, 15.0, 200 * 2**20], [20.0, 25.0, 300 * 2**20], [30.0, 40.0, 100 * 2**20]]


def test_window_usage_differences_cumulative_cpu():
    u = metrics.window_usage(SERIES, 10.0, 30.0)
    assert u["cpu_seconds"] == 25.0          # 40 - 15, not an average of cumulative values
    assert u["cores"] == 1.25
    assert u["rss_mean_mib"] == 200.0 and u["rss_peak_mib"] == 300.0
    assert u["ram_gib_seconds"] == pytest.approx(200 / 1024 * 20, rel=1e-3)


def test_window_usage_of_nothing_is_zero():
    assert metrics.window_usage([], 0, 10)["cpu_seconds"] == 0.0


def test_analyse_labels_client_bound_and_saturation():
    samples = {"series": {"log": SERIES, "gen": [[0.0, 0.0, 0], [10.0, 0.0, 0], [30.0, 20.0, 0]]},
               "machine": [[10.0, 0.0, 100.0], [30.0, 76.0, 180.0]], "cores": 2}
    out = metrics.analyse(samples, ["log"], ["gen"], 10.0, 30.0)
    assert out["generator"]["cores"] == 1.0 and "client-bound" in out["labels"]
    assert out["machine_cpu_share"] == 0.95 and "machine CPU saturated" in out["labels"]
    assert out["system_cpu_seconds"] == 25.0


def test_sampler_reads_a_real_process_tree(tmp_path):
    from scripts import proc
    rec = proc.spawn("spinner", [os.sys.executable, "-c", "import time\nend=time.time()+3\nwhile time.time()<end: pass"],
                     log_path=tmp_path / "s.log")
    sampler = metrics.Sampler({"spinner": rec}, interval=0.2).start()
    time.sleep(1.5)
    sampler.stop()
    proc.stop(rec)
    points = sampler.export()["series"]["spinner"]
    assert points[-1][1] - points[0][1] > 0.5       # it burned CPU
    assert all(b[1] >= a[1] for a, b in zip(points, points[1:]))  # cumulative never goes backwards


def test_cost_section_matches_hand_arithmetic():
    book = costs.load_costs()
    sec = metrics.cost_section(book, "small", "trillian", qps=100.0, entries=6000, window_s=60.0,
                               cpu_seconds=30.0, ram_gib_seconds=60.0)
    vcpu = book["prices"]["e2_vcpu_hour"]["usd"] if "prices" in book else None
    consumed = sec["consumed"]
    assert consumed["items"][0]["quantity"] == pytest.approx(0.5)   # 30 CPU-s / 60 s
    assert consumed["items"][1]["quantity"] == pytest.approx(1.0)   # 60 GiB-s / 60 s
    per_million = consumed["usd_per_hour"] / (100.0 * 3600) * 1e6
    assert consumed["derived"]["usd_per_million_entries"] == pytest.approx(per_million)
    assert sec["provisioned"]["derived"]["entries_per_cpu_second"] == pytest.approx(200.0)
    assert vcpu is None or consumed["items"][0]["rate_usd"] == pytest.approx(vcpu)
