"""Shared helpers for the fault, interrupt, bad-input and hygiene tests (issue 5).

Every stack these tests start lives in private dirs (CTB_STATE_DIR, CTB_RESULTS_DIR, CTB_README), and
every process started for it inherits those variables: `leaked(env)` finds anything still running with
our CTB_STATE_DIR in its environment, whoever its parent is, so a leak cannot hide behind a reparenting.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import psutil

from scripts import bootstrap, paths

REPO = paths.REPO
INV = [sys.executable, "-m", "invoke"]
COMPONENTS = ("mariadb", "trillian_log_server", "trillian_log_signer", "ct_server", "tesseract", "tesseract_static")


def need_binaries() -> None:
    import pytest
    missing = [b for bins in bootstrap.MODULES.values() for b in bins if not (paths.BIN_DIR / b).exists()]
    if missing:
        pytest.fail(f"binaries missing ({', '.join(missing)}): run `inv bootstrap` first")


def make_env(tmp: Path, **extra: str) -> dict[str, str]:
    """A private harness environment under tmp; README is a copy of the repo's."""
    tmp.mkdir(parents=True, exist_ok=True)
    readme = tmp / "README.md"
    if not readme.exists():
        readme.write_text((REPO / "README.md").read_text())
    env = {**os.environ, "CTB_STATE_DIR": str(tmp / "state"), "CTB_RESULTS_DIR": str(tmp / "results"),
           "CTB_README": str(readme), "CTB_BIN_DIR": str(paths.BIN_DIR), "PYTHONUNBUFFERED": "1"}
    env.pop("INVOKE_RUNTIME_CONFIG", None)
    env.update(extra)
    return env


def inv(env: dict[str, str], *args: str, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*INV, *args], cwd=cwd or REPO, env=env, capture_output=True, text=True, timeout=timeout)


def inv_bg(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([*INV, *args], cwd=cwd or REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def state_file(env: dict[str, str]) -> Path:
    return Path(env["CTB_STATE_DIR"]) / "state.json"


def load_state(env: dict[str, str]) -> dict:
    return json.loads(state_file(env).read_text())


def latest_results(env: dict[str, str]) -> dict:
    return json.loads((Path(env["CTB_RESULTS_DIR"]) / "latest" / "results.json").read_text())


def leaked(env: dict[str, str]) -> list[str]:
    """Processes (other than this test process) whose environment carries this env's CTB_STATE_DIR."""
    marker = env["CTB_STATE_DIR"]
    me = os.getpid()
    out = []
    for p in psutil.process_iter(["pid", "name", "status"]):
        if p.pid == me or p.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            if p.environ().get("CTB_STATE_DIR") == marker:
                out.append(f"{p.info['name']}[{p.pid}]")
        except (psutil.Error, OSError):
            continue
    return out


def wait_until(what: str, cond: Callable[[], object], deadline_s: float, interval: float = 0.2) -> object:
    end = time.monotonic() + deadline_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline_s}s waiting for {what}")
        time.sleep(interval)


def no_leaks(env: dict[str, str], deadline_s: float = 15) -> None:
    """Wait (with a deadline) for everything of this env to be gone; fail naming what is left."""
    try:
        wait_until("no leftover processes", lambda: not leaked(env), deadline_s, 0.5)
    except AssertionError:
        raise AssertionError(f"processes left running: {', '.join(leaked(env))}") from None


def ports_of(st: dict) -> list[int]:
    return [port for rec in st["components"].values() for port in rec.get("ports", {}).values()]


def listening(ports: list[int]) -> list[int]:
    busy = {c.laddr.port for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    return [p for p in ports if p in busy]


def down(env: dict[str, str]) -> None:
    """Finalizer: `inv down`, then SIGKILL by pid anything of ours that still runs (never by name)."""
    try:
        inv(env, "down", timeout=120)
    except subprocess.TimeoutExpired:
        pass
    marker = env["CTB_STATE_DIR"]
    for p in psutil.process_iter(["pid"]):
        try:
            if p.pid != os.getpid() and p.environ().get("CTB_STATE_DIR") == marker:
                p.send_signal(signal.SIGCONT)
                p.kill()
        except (psutil.Error, OSError):
            continue
