"""SSH target against real sshd processes started here (tests/sshd_fixture.py), through `inv` as a user runs it.

Two hosts: `stack` (the logs) and `loadgen` (a second sshd, in a network namespace when possible, so the
load crosses a real link to the stack's non-loopback address). Everything lives in temp dirs: this
machine's CTB_STATE_DIR/CTB_RESULTS_DIR/CTB_README and the hosts' workdir (CTB_SSH_WORKDIR), so other
runs of the local stack on this machine are never touched.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from scripts import paths
from tests.sshd_fixture import free_port, sshd_available, two_hosts

pytestmark = pytest.mark.ssh

INV = str(Path(sys.executable).parent / "inv")
BINARIES = ("trillian_log_server", "trillian_log_signer", "createtree", "ct_server", "posix")
RUN = {"INVOKE_BENCH_DURATION": "12", "INVOKE_BENCH_WARMUP": "3", "INVOKE_BENCH_QPS": "40"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    why = sshd_available()
    if why:
        pytest.skip(why)
    missing = [b for b in BINARIES if not (paths.BIN_DIR / b).exists()]
    if missing:
        pytest.skip(f"run `inv bootstrap` first ({', '.join(missing)} not built)")
    the_lab = two_hosts(tmp_path_factory.mktemp("sshlab"))
    yield the_lab
    the_lab.close()


@pytest.fixture(scope="module")
def env(lab, tmp_path_factory):
    """The environment `inv` runs with: the lab's ssh config, and temp dirs on both sides."""
    top = tmp_path_factory.mktemp("ssh-target")
    readme = top / "README.md"
    shutil.copyfile(paths.REPO / "README.md", readme)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("INVOKE_", "CTB_")) and k != "SSH_AUTH_SOCK"}
    values = {**base, "CTB_SSH_CONFIG": str(lab.ssh_config), "CTB_SSH_WORKDIR": str(top / "hosts"),
              "CTB_STATE_DIR": str(top / "state"), "CTB_RESULTS_DIR": str(top / "results"),
              "CTB_README": str(readme), "PYTHONUNBUFFERED": "1"}
    yield values
    # Whatever a failed test left on the hosts: the harness's own teardown, then anything still running
    # from the test's workdir (those pids were started by this test; the path is unique to it).
    subprocess.run([INV, "down", "--target", "ssh"], env=values, cwd=paths.REPO, capture_output=True, timeout=180)
    _stop_started_under(top)
    for bulky in ("bin", "venv"):  # ~0.5 GB of copies; the hosts' logs and state stay for a post-mortem
        shutil.rmtree(top / "hosts" / bulky, ignore_errors=True)


def _stop_started_under(top: Path) -> None:
    procs = [p for p in _running_under(top)]
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=10)


def _running_under(top: Path) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline", "name"]):
        try:
            if any(str(top) in arg for arg in p.info["cmdline"] or []):
                out.append(p)
        except psutil.Error:
            pass
    return out


def inv(env: dict, *args: str, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([INV, *args], env={**env, **extra}, cwd=paths.REPO, capture_output=True, text=True,
                          timeout=timeout)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


# --------------------------------------------------------------------------- bad input: nothing changes remotely


@pytest.fixture
def untouched(env, tmp_path):
    """A workdir that must stay absent: the bad-input cases fail before anything is written on the host."""
    workdir = tmp_path / "must-not-exist"
    yield {**env, "CTB_SSH_WORKDIR": str(workdir)}
    assert not workdir.exists()


def test_an_unreachable_host_is_one_line_and_exit_2(lab, untouched):
    alias = lab.alias("nowhere", "127.0.0.1", free_port())
    proc = inv(untouched, "deploy", "--target", "ssh", "--host", alias, timeout=60)
    assert proc.returncode == 2
    assert "cannot reach root@127.0.0.1" in one_error_line(proc)


def test_a_key_the_host_does_not_accept_is_one_line_and_exit_2(lab, untouched):
    stack = lab.hosts["stack"]
    alias = lab.alias("wrongkey", stack.address, stack.port, key=lab.other_key)
    proc = inv(untouched, "deploy", "--target", "ssh", "--host", alias, timeout=60)
    assert proc.returncode == 2
    assert "SSH authentication failed for root@" in one_error_line(proc)


def test_an_unknown_host_key_is_refused_not_accepted(lab, untouched):
    stack = lab.hosts["stack"]
    alias = lab.alias("stranger", stack.address, stack.port, known_hosts=lab.dir / "empty_known_hosts")
    proc = inv(untouched, "deploy", "--target", "ssh", "--host", alias, timeout=60)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert "unknown host key" in line and "ssh-ed25519" in line and "nothing was changed" in line
    assert (lab.dir / "empty_known_hosts").read_text() == ""  # not silently added either


def test_steps_without_a_deployment_say_so(env):
    proc = inv(env, "smoke", "--target", "ssh", timeout=60)
    assert proc.returncode == 2 and "nothing is deployed over SSH" in one_error_line(proc)


# --------------------------------------------------------------------------- the real thing


def _deploy_half_way(stack_dir: Path) -> psutil.Process | None:
    """The host's `python -m scripts.deploy` once MariaDB runs under it (this test's processes only)."""
    procs = _running_under(stack_dir.parent)
    deploy = [p for p in procs if "scripts.deploy" in " ".join(p.info["cmdline"])]
    mariadb = [p for p in procs if any(str(stack_dir) in a for a in p.info["cmdline"]) and "mariadbd" in p.info["name"]]
    return deploy[0] if deploy and mariadb else None


def test_an_interrupted_deploy_is_stopped_on_the_host(lab, env):
    """Ctrl-C while the host is half-way through its deploy: what it started is stopped there.

    The host's deploy is frozen (SIGSTOP) once MariaDB runs, so the interrupt lands mid-way however fast
    the machine is; it is resumed once the controller has had time to interrupt it.
    """
    stack_dir = Path(env["CTB_SSH_WORKDIR"]) / "stack"
    proc = subprocess.Popen([INV, "deploy", "--target", "ssh", "--host", "stack"], env=env, cwd=paths.REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    frozen = None
    try:
        deadline = time.monotonic() + 240
        while frozen is None and proc.poll() is None and time.monotonic() < deadline:
            frozen = _deploy_half_way(stack_dir)
            time.sleep(0.05)
        assert frozen is not None, "the host's deploy never got half-way"
        try:
            frozen.suspend()
        except psutil.NoSuchProcess:
            pytest.fail("the host's deploy finished before it could be frozen")
        proc.send_signal(signal.SIGINT)
        time.sleep(4.0)  # the controller connects again and interrupts the frozen deploy
        frozen.resume()
        _out, err = proc.communicate(timeout=240)
    finally:
        if frozen is not None:
            try:
                frozen.resume()
            except psutil.Error:
                pass
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert not (stack_dir / "state" / "state.json").exists()
    assert not (Path(env["CTB_STATE_DIR"]) / "ssh-target.json").exists()
    end = time.monotonic() + 30
    while _running_under(stack_dir) and time.monotonic() < end:
        time.sleep(0.5)
    assert not _running_under(stack_dir)


def test_deploy_smoke_bench_report_over_ssh(lab, env):
    proc = inv(env, "deploy", "smoke", "bench", "report", timeout=600,
               INVOKE_BENCH_TARGET="ssh", INVOKE_BENCH_HOST="stack", **RUN)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "[stack] smoke trillian: 3 chains accepted, SCTs verified" in proc.stdout
    doc = json.loads((Path(env["CTB_RESULTS_DIR"]) / "latest" / "results.json").read_text())
    assert doc["status"] == "ok" and doc["target"] == "ssh"
    assert doc["machine"]["ssh_host"] == "stack" and doc["machine"]["loadgen"]["where"].startswith("this machine")
    for system, components in (("trillian", {"mariadb", "trillian_log_server", "trillian_log_signer", "ct_server"}),
                               ("tesseract", {"tesseract", "tesseract_static"})):
        res = doc["systems"][system]
        assert res["status"] == "ok" and res["qps"] > 0, res
        # Metrics from the stack host, through the same sampler: every component used CPU and memory.
        assert set(res["resources"]["components"]) == components
        assert all(c["rss_mean_mib"] > 0 for c in res["resources"]["components"].values())
        assert res["resources"]["generator"]["processes"]
    assert doc["systems"]["trillian"]["accepted_in_window"] > 0  # CTFE's counter, read on the host
    logs = Path(env["CTB_RESULTS_DIR"]) / "latest" / "logs"
    assert (logs / "ct_server.log").exists() and (logs / "tesseract.log").exists()
    assert "BENCHMARK-RESULTS-START" in Path(env["CTB_README"]).read_text()
    assert (Path(env["CTB_RESULTS_DIR"]) / "latest" / "pr_body.md").exists()


def test_bench_with_the_load_from_a_second_host(lab, env):
    proc = inv(env, "bench", "report", timeout=600, INVOKE_BENCH_TARGET="ssh", INVOKE_BENCH_HOST="stack",
               INVOKE_BENCH_LOADGEN_HOST="loadgen", **RUN)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "[loadgen]" in proc.stdout
    doc = json.loads((Path(env["CTB_RESULTS_DIR"]) / "latest" / "results.json").read_text())
    assert doc["status"] == "ok" and doc["settings"]["loadgen_host"] == "loadgen"
    assert doc["machine"]["loadgen"]["where"] == "loadgen"
    assert all(r["status"] == "ok" and r["qps"] > 0 for r in doc["systems"].values())
    if lab.mode == "netns":  # the load crossed the veth to the stack's own address
        assert lab.outside in doc["components"]["ct_server"]["flags"]["http_endpoint"]


def test_down_stops_everything_on_the_host_and_is_safe_to_repeat(env):
    state_file = Path(env["CTB_SSH_WORKDIR"]) / "stack" / "state" / "state.json"
    pids = [rec["pid"] for rec in json.loads(state_file.read_text())["components"].values()]
    proc = inv(env, "down", "--target", "ssh", timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "down: stack: stopped" in proc.stdout
    assert not state_file.exists()
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)
    again = inv(env, "down", "--target", "ssh", timeout=60)
    assert again.returncode == 0 and "nothing is deployed over SSH" in again.stdout
