"""The one door for subprocesses: timeouts, masking, spawn/stop by pid + start time, deadlines."""
from __future__ import annotations

import sys
import time

import psutil
import pytest

from scripts import proc
from scripts.errors import RunFailed


def test_run_returns_output_and_raises_one_line_on_failure():
    assert proc.run([sys.executable, "-c", "print('hi')"], timeout=30).stdout.strip() == "hi"
    with pytest.raises(RunFailed, match="exit 3"):
        proc.run([sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"], timeout=30)


def test_run_masks_secrets_in_errors():
    with pytest.raises(RunFailed) as err:
        proc.run([sys.executable, "-c", "import sys; print('pw=hunter2', file=sys.stderr); sys.exit(1)"],
                 timeout=30, secrets=["hunter2"])
    assert "hunter2" not in str(err.value) and proc.MASK in str(err.value)


def test_run_timeout_and_missing_program():
    with pytest.raises(RunFailed, match="timed out"):
        proc.run([sys.executable, "-c", "import time; time.sleep(10)"], timeout=0.5)
    with pytest.raises(RunFailed, match="program not found"):
        proc.run(["/nonexistent/program"], timeout=5)


def test_spawn_stop_kills_the_whole_process_group(tmp_path):
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    rec = proc.spawn("parent", [sys.executable, "-c", code], log_path=tmp_path / "p.log")
    proc.wait_for("child", lambda: len(proc.tree(rec)) == 2, deadline_s=10)
    members = proc.tree(rec)
    assert proc.alive(rec)
    assert proc.stop(rec, grace=3)
    assert not proc.alive(rec)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in members)
    assert proc.stop(rec) is False  # idempotent


def test_recycled_pid_is_not_ours(tmp_path):
    rec = proc.spawn("sleeper", [sys.executable, "-c", "import time; time.sleep(30)"], log_path=tmp_path / "s.log")
    fake = {**rec, "create_time": rec["create_time"] - 1000, "start_ticks": rec["start_ticks"] - 100_000}
    assert not proc.alive(fake)
    assert proc.stop(fake) is False and proc.alive(rec)
    proc.stop(rec)


def test_wait_for_fails_fast_when_the_watched_process_exits(tmp_path):
    rec = proc.spawn("quitter", [sys.executable, "-c", "print('bad config'); raise SystemExit(4)"],
                     log_path=tmp_path / "q.log")
    started = time.monotonic()
    with pytest.raises(RunFailed, match="quitter exited during start-up.*exit 4.*bad config"):
        proc.wait_for("never", lambda: False, deadline_s=30, watch=rec)
    assert time.monotonic() - started < 10


def test_wait_for_deadline_reports_last_error():
    def boom():
        raise ValueError("connection refused")
    with pytest.raises(RunFailed, match="timed out after 0.3s waiting for thing.*connection refused"):
        proc.wait_for("thing", boom, deadline_s=0.3, interval=0.05)


def test_free_port_is_bindable_on_loopback():
    port = proc.free_port()
    assert 1024 < port < 65536 and not proc.port_open(port)


def test_wait_for_never_swallows_an_interrupt():
    # SIGTERM is raised as Interrupted inside whatever runs; a readiness poll must not treat it as
    # "not ready yet" and carry on deploying (seen: deploy exited 0 after SIGTERM during MariaDB start-up).
    from scripts.errors import Interrupted

    def condition():
        raise Interrupted("terminated (SIGTERM)")
    with pytest.raises(Interrupted):
        proc.wait_for("anything", condition, deadline_s=5, interval=0.01)
