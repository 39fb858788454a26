"""Run guards and the integration-rate arithmetic (pure parts of scripts/hammer.py)."""
from __future__ import annotations

import pytest

from scripts import hammer


def ok_obs(**over):
    obs = {"window_s": 60.0, "entries_integrated": 6000}
    obs.update(over)
    return obs


def test_a_real_run_passes():
    assert hammer.judge(ok_obs(), 60) == ("ok", "")


@pytest.mark.parametrize("obs, needle", [
    # The seed bug: a generator that crashed at start after one write over 7 ms.
    (ok_obs(window_s=0.007, entries_integrated=1), "window too short"),
    (ok_obs(entries_integrated=0), "only 0 entries"),
    (ok_obs(entries_integrated=3), "only 3 entries"),
    (ok_obs(generator_exited=True, generator_exit_codes={"ct_hammer_0": 1}), "ct_hammer_0 exit 1"),
    (ok_obs(dead_components=["trillian_log_signer"]), "trillian_log_signer"),
    (ok_obs(error="timed out after 190s"), "timed out"),
    (ok_obs(window_s=50.0), "50.0s of 60s"),
])
def test_runs_that_did_not_really_run_fail(obs, needle):
    status, reason = hammer.judge(obs, 60)
    assert status == "failed" and needle in reason


def test_error_takes_precedence_over_numbers():
    status, reason = hammer.judge(ok_obs(error="signed tree failed verification: STH: shrank"), 60)
    assert status == "failed" and "verification" in reason


def test_ct_hammer_plan_offers_the_target():
    for qps in (10, 100, 200, 1000, 5000):
        processes, rate = hammer.ct_hammer_plan(qps)
        offered = processes * rate * (1 + hammer.CT_HAMMER_CHAINS_PER_OP) / 2
        assert abs(offered - qps) / qps < 0.25, (qps, processes, rate)
        assert processes * hammer.CT_HAMMER_QPS_PER_PROCESS >= qps


def test_rates_are_interpolated_on_log_timestamps():
    # A TesseraCT-like log: +150 entries every 1.5 s (100/s), read every second on the local clock.
    points = []
    for i in range(0, 31):
        t_local = 1000.0 + i
        ts = int((1000.0 + (i // 1.5) * 1.5) * 1000) - 200  # heads lag the read
        size = int((i // 1.5) * 150)
        points.append((t_local, size, ts))
    rates = hammer.per_interval_rates(points, 1005.0, 1025.0, 5.0)
    assert len(rates) == 4
    assert all(abs(r - 100) < 15 for r in rates), rates
    assert hammer.stability(rates)["unstable"] is False


def test_stability_flags_a_stalling_log():
    assert hammer.stability([100, 100, 0, 100])["unstable"] is True
    assert hammer.stability([100.0, 101.0, 99.0, 100.0])["cov"] < 0.02
    assert hammer.stability([5.0])["cov"] is None
    assert hammer.stability([0.0, 0.0])["cov"] is None


def test_limited_by_labels():
    assert "client-bound" in hammer.limited_by({"resources": {"labels": ["client-bound"]}, "offered_qps": 100, "qps": 60})
    # A log that integrated the offered rate kept up, whatever the generator's schedule precision.
    assert hammer.limited_by({"resources": {"labels": ["client-bound"]}, "offered_qps": 100, "qps": 99}).startswith("offered")
    kept_up = {"resources": {"labels": []}, "offered_qps": 100, "generator": {"offered_qps": 100}, "qps": 98}
    assert hammer.limited_by(kept_up).startswith("offered rate")
    behind = {**kept_up, "qps": 40, "sustainable": False}
    assert "not sustainable" in hammer.limited_by(behind)
    assert hammer.limited_by({**kept_up, "qps": 40}) == "log"


def test_sustainable_compares_accepted_with_integrated():
    base = {"entries_integrated": 1000, "backlog_at_window_end": 20}
    assert hammer.sustainable(base)
    assert not hammer.sustainable({**base, "backlog_at_window_end": 500})
    assert not hammer.sustainable({**base, "accepted_in_window": 1500})
    assert hammer.sustainable({**base, "accepted_in_window": 1050})


def test_native_shortfall_is_not_blamed_on_the_log_alone():
    obs = {"resources": {"labels": []}, "offered_qps": 200, "generator": {"kind": "native", "offered_qps": 198},
           "qps": 150, "sustainable": True}
    assert "closed-loop" in hammer.limited_by(obs)


def test_ok_in_window_counts_only_whole_seconds_inside():
    per_second = [10, 10, 10, 10, 10, 10]
    assert hammer.ok_in_window(per_second, 100.0, 102.0, 105.0) == 30
    assert hammer.ok_in_window(per_second, 100.0, 100.0, 106.0) == 60
    assert hammer.ok_in_window(None, 100.0, 100.0, 106.0) is None
