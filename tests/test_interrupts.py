"""Interrupts (issue 5 §2): SIGINT and SIGTERM to `inv` during bootstrap, deploy, smoke, hammer and report.

Each case checks what a user relies on after pressing Ctrl-C (or a CI runner's SIGTERM): exit 130 with
one line, everything the step started is stopped (no process of this test's private dirs left), ports
freed, the state file either absent or consistent with what still runs, and a partial run's results
marked `interrupted` with no number for what was not measured. The first tests pin down the
subprocess door itself: a timed-out or interrupted command takes its whole process group with it, and
a stalled process can still be stopped gracefully.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest

from scripts import proc
from scripts.errors import RunFailed
from tests import faultkit as fk


def _group_members(pgid: int) -> list[int]:
    out = []
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except (OSError, psutil.Error):
            continue
    return out


def _run_and_catch_group(fn) -> tuple[int | None, BaseException | None]:
    """Run fn (which calls proc.run on a shell with a background child); return its pgid and error."""
    seen: dict[str, int] = {}
    real_popen = proc.subprocess.Popen

    class Spy(real_popen):  # type: ignore[misc, valid-type]
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            seen["pgid"] = self.pid

    proc.subprocess.Popen = Spy
    try:
        fn()
        return seen.get("pgid"), None
    except BaseException as exc:  # noqa: BLE001 - the caught error is what the test inspects
        return seen.get("pgid"), exc
    finally:
        proc.subprocess.Popen = real_popen


def test_run_timeout_kills_the_whole_process_group():
    # A shell with a background helper, like `go build` with its compile processes.
    pgid, exc = _run_and_catch_group(lambda: proc.run(["sh", "-c", "sleep 60 & sleep 61; wait"], timeout=1))
    assert isinstance(exc, RunFailed) and "timed out after 1s" in str(exc)
    fk.wait_until("the group to be gone", lambda: not _group_members(pgid), 5)


def test_run_interrupted_kills_the_whole_process_group():
    timer = threading.Timer(0.7, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    pgid, exc = _run_and_catch_group(lambda: proc.run(["sh", "-c", "sleep 60 & sleep 61; wait"], timeout=30))
    timer.cancel()
    assert isinstance(exc, KeyboardInterrupt)
    fk.wait_until("the group to be gone", lambda: not _group_members(pgid), 5)


def test_stop_a_stalled_process_is_graceful(tmp_path):
    # SIGTERM stays pending on a SIGSTOPped process: without SIGCONT, stop() waits the whole grace and
    # SIGKILLs (a database killed -9 instead of shut down).
    rec = proc.spawn("stalled", ["sleep", "300"], log_path=tmp_path / "stalled.log")
    os.kill(rec["pid"], signal.SIGSTOP)
    started = time.monotonic()
    assert proc.stop(rec, grace=8)
    assert time.monotonic() - started < 3  # it acted on SIGTERM, no grace period, no SIGKILL
    assert not proc.alive(rec)


def test_stop_does_not_wait_for_init_to_reap(tmp_path):
    # After `inv deploy` exits, components belong to init, which may reap them late; an exited component
    # is a zombie until then. stop() used to wait for the reaping (~2 s each here) and, past the grace,
    # SIGKILLed processes that had already exited.
    import sys
    out = subprocess.run([sys.executable, "-c", "import json, sys; from pathlib import Path; from scripts import proc; "
                          f"print(json.dumps(proc.spawn('orphan', ['sleep', '300'], log_path=Path('{tmp_path}/o.log'))))"],
                         cwd=fk.REPO, capture_output=True, text=True, check=True)
    rec = json.loads(out.stdout)
    assert proc.alive(rec) and psutil.Process(rec["pid"]).ppid() != os.getpid()
    started = time.monotonic()
    assert proc.stop(rec, grace=8)
    assert time.monotonic() - started < 1.0
    assert not proc.alive(rec)
