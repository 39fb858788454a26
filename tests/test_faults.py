"""Fault injection on the real local stack (issue 5 §1 and §5), marker `faults`.

Each case deploys both logs in private dirs, starts `inv hammer` (both systems, Trillian first), and
during the measured window of one system kills (SIGKILL) or stalls (SIGSTOP) one of its components or
its load generator. Then, as a user would see it:

* `inv hammer` exits non-zero, with one line, in bounded time (a stall must fire a deadline, not hang);
* that system's result is `failed`, its reason names the component, and it has no QPS;
* the other system's result is `ok` with a QPS (it was not disturbed);
* `inv report` renders that system's README row as failed, with no number;
* `inv down` leaves no process of this test behind, and frees every port.

The teardown-failure case (§5) is in-process: a component that cannot be stopped keeps the results,
marks them `cleanup failed` and lists what still runs, through `inv ci`'s own code path.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from scripts import proc
from tests import faultkit as fk

pytestmark = pytest.mark.faults

QPS, WARMUP, DURATION = "40", "1", "5"
SYSTEM_OF = {"mariadb": "trillian", "trillian_log_server": "trillian", "trillian_log_signer": "trillian",
             "ct_server": "trillian", "tesseract": "tesseract", "tesseract_static": "tesseract"}
OTHER = {"trillian": "tesseract", "tesseract": "trillian"}
NATIVE = {"trillian": "ct_hammer", "tesseract": "hammer"}   # process names of the native generators
HAMMER_DEADLINE_S = 150   # 2 x (warmup + window + drain) + stall deadline + slack: no hang


def _generator_pids(env: dict, system: str) -> list[int]:
    """Top processes of `system`'s load generator (uniform: python -m scripts.loadgen --label=<system>;
    native: ct_hammer or TesseraCT's hammer), found by this test's env marker, never by name alone."""
    marker = env["CTB_STATE_DIR"]
    out = []
    for p in psutil.process_iter(["pid", "name", "cmdline"]):
        try:
            cmd = p.info["cmdline"] or []
            uniform = "scripts.loadgen" in cmd and f"--label={system}" in cmd
            if (uniform or p.info["name"] == NATIVE[system]) and p.environ().get("CTB_STATE_DIR") == marker:
                out.append(p.pid)
        except (psutil.Error, OSError):
            continue
    return out


def _inject(env: dict, target: str, system: str, sig: int) -> dict:
    """Wait for `system`'s generator, then for its measured window, then signal `target`."""
    fk.wait_until(f"{system}'s load generator to start", lambda: _generator_pids(env, system), 120, 0.1)
    time.sleep(float(WARMUP) + 1.5)  # inside the measured window
    if target == "generator":
        pids = _generator_pids(env, system)
    else:
        pids = [fk.load_state(env)["components"][target]["pid"]]
    for pid in pids:
        os.kill(pid, sig)
    return {"pids": pids, "at": time.monotonic()}


def _deploy(tmp: Path) -> dict:
    fk.need_binaries()
    env = fk.make_env(tmp)
    deployed = fk.inv(env, "deploy", timeout=180)
    assert deployed.returncode == 0, deployed.stdout[-1500:] + deployed.stderr[-1500:]
    return env


@pytest.fixture()
def stack(tmp_path):
    """A deployment of its own: the case kills one of its components."""
    env = _deploy(tmp_path)
    yield env
    fk.down(env)


@pytest.fixture(scope="module")
def shared_stack(tmp_path_factory):
    """One deployment for the cases its components survive (a killed generator, a stall then SIGCONT)."""
    env = _deploy(tmp_path_factory.mktemp("shared"))
    ports = fk.ports_of(fk.load_state(env))
    yield env
    downed = fk.inv(env, "down", timeout=120)
    fk.down(env)
    assert downed.returncode == 0, downed.stderr
    fk.no_leaks(env)
    assert not fk.listening(ports), f"ports still listening: {fk.listening(ports)}"


def _run_fault(env: dict, target: str, sig: int, loadgen: str) -> tuple[str, str]:
    """hammer both systems, inject the fault, check exit code, results and README; (system, victim)."""
    system = target.split(":")[1] if target.startswith("generator:") else SYSTEM_OF[target]
    victim = "generator" if target.startswith("generator:") else target
    run = fk.inv_bg(env, "hammer", "--qps", QPS, "--warmup", WARMUP, "--duration", DURATION, "--loadgen", loadgen)
    try:
        injected = _inject(env, victim, system, sig)
        out, err = run.communicate(timeout=HAMMER_DEADLINE_S)  # a stall must fire a deadline, not hang
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 1, out[-2000:] + err[-2000:]
    assert "Traceback" not in err
    assert err.strip().startswith("error:") and len(err.strip().splitlines()) == 1, err

    doc = fk.latest_results(env)
    res, other = doc["systems"][system], doc["systems"][OTHER[system]]
    assert res["status"] == "failed" and res["qps"] is None, res
    if victim == "generator":
        assert "load generator" in res["reason"], res["reason"]
    else:
        assert victim in res["reason"], res["reason"]
    if sig == signal.SIGSTOP:
        assert "stalled" in res["reason"], res["reason"]
        for pid in injected["pids"]:
            os.kill(pid, signal.SIGCONT)  # the operator resumes it; the deployment lives on
    assert other["status"] == "ok" and other["qps"] > 0, other

    report = fk.inv(env, "report")
    assert report.returncode == 0, report.stderr
    readme = Path(env["CTB_README"]).read_text()
    row = next(line for line in readme.splitlines() if line.startswith(f"| {system} |"))
    assert "**failed**" in row and (victim in row if victim != "generator" else "load generator" in row), row
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "—", row   # no sustained QPS published
    other_row = next(line for line in readme.splitlines() if line.startswith(f"| {OTHER[system]} |"))
    assert "| ok" in other_row
    return system, victim


# Every component killed once, under the default (uniform) generator.
KILLS = ["mariadb", "trillian_log_server", "trillian_log_signer", "ct_server", "tesseract", "tesseract_static"]


@pytest.mark.parametrize("target", KILLS)
def test_component_killed_during_the_measured_window(stack, target):
    env = stack
    ports = fk.ports_of(fk.load_state(env))
    _run_fault(env, target, signal.SIGKILL, "uniform")
    downed = fk.inv(env, "down", timeout=120)
    assert downed.returncode == 0, downed.stderr
    fk.no_leaks(env)
    assert not fk.listening(ports), f"ports still listening: {fk.listening(ports)}"
    assert not fk.state_file(env).exists()


# Each generator killed once (the uniform one and an upstream hammer), and two stalls: the components
# survive these, so they share one deployment.
SURVIVED = [("generator:trillian", signal.SIGKILL, "uniform"), ("generator:tesseract", signal.SIGKILL, "native"),
            ("ct_server", signal.SIGSTOP, "uniform"), ("tesseract", signal.SIGSTOP, "uniform")]


@pytest.mark.parametrize("target, sig, loadgen", SURVIVED,
                         ids=[f"{t}-{signal.Signals(s).name}-{g}" for t, s, g in SURVIVED])
def test_generator_killed_or_component_stalled(shared_stack, target, sig, loadgen):
    env = shared_stack
    _run_fault(env, target, sig, loadgen)
    st = fk.load_state(env)
    dead = [n for n, rec in st["components"].items() if not proc.alive(rec) or proc.stalled(rec)]
    assert not dead, f"components not running after the case: {dead}"
    # Nothing but the deployment's own processes is left (no generator, no generator helper).
    own = set()
    for rec in st["components"].values():
        p = psutil.Process(rec["pid"])
        own |= {p.pid} | {c.pid for c in p.children(recursive=True)}
    fk.wait_until("the generator's processes to be gone",
                  lambda: not [x for x in fk.leaked(env) if int(x.rsplit("[", 1)[1].rstrip("]")) not in own], 15, 0.3)


def test_teardown_failure_keeps_results_and_says_cleanup_failed(tmp_path, monkeypatch):
    """§5 through `inv ci`'s code: a component that survives teardown is listed; results kept; exit 1."""
    import invoke

    import tasks
    from scripts import bench, config, deploy, down, paths, proc, results, state, update_readme

    readme = tmp_path / "README.md"
    readme.write_text((fk.REPO / "README.md").read_text())
    monkeypatch.setattr(paths, "STATE_DIR", tmp_path / "state")
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(paths, "README", readme)
    stubborn = proc.spawn("mariadb", ["sleep", "120"], log_path=tmp_path / "mariadb.log")
    try:
        st = {"target": "local", "deployed_at": "2026-01-01T00:00:00+00:00", "deployer_pid": os.getpid(),
              "versions": {}, "components": {"mariadb": {**stubborn, "system": "trillian", "flags": {}, "seq": 0}},
              "systems": {"trillian": {"components": ["mariadb"]}}, "deploy_seconds": 0.1}

        def fake_deploy(settings, **_):
            state.save(st)
            return st

        def fake_bench(settings, **_):
            doc = results.new_run(settings, st)
            doc["systems"]["trillian"] = results.failed_entry("smoke failed: scripted")
            results.finish(doc)
            results.save(doc)
            return doc

        monkeypatch.setattr(deploy, "deploy", fake_deploy)
        monkeypatch.setattr(bench, "bench", fake_bench)
        monkeypatch.setattr(down.proc, "stop", lambda rec, **kw: False)  # the kill does not take
        c = invoke.Context(invoke.Config(overrides={"bench": dict(config.DEFAULTS)}))
        with pytest.raises(invoke.Exit) as exited:
            tasks.ci(c, systems="trillian")
        assert exited.value.code == 1
        assert "cleanup failed" in str(exited.value.message) and "mariadb" in str(exited.value.message)

        doc = results.load()
        assert doc["status"] == "cleanup failed"
        assert doc["cleanup"]["still_running"] == ["mariadb"]
        assert doc["systems"]["trillian"]["reason"] == "smoke failed: scripted"   # results kept
        assert "still running after teardown: mariadb" in readme.read_text()
        assert json.loads(state.state_file().read_text())["cleanup_failed"] == ["mariadb"]
        assert (results.run_dir(doc) / update_readme.PR_BODY_NAME).read_text().count("cleanup failed") >= 1
    finally:
        monkeypatch.undo()
        proc.stop(stubborn, grace=2)
    assert not proc.alive(stubborn)
    # Once the process is really gone, a repeated down clears the kept state (idempotent).
    monkeypatch.setattr(paths, "STATE_DIR", tmp_path / "state")
    assert down.down(log=lambda *a: None)["left"] == []
    assert not (tmp_path / "state" / "state.json").exists()


def test_down_stops_peers_together_and_backends_last():
    from scripts import down
    st = {"components": {n: {"pid": i, "seq": i} for i, n in enumerate(fk.COMPONENTS)}}
    waves = [[name for name, _ in wave] for wave in down.stop_waves(st)]
    assert waves == [["tesseract_static", "tesseract", "ct_server"],
                     ["trillian_log_signer", "trillian_log_server"], ["mariadb"]]
