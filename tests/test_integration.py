"""The real local stack end to end: inv deploy -> smoke -> bench -> report -> down, through invoke.

Runs the real binaries built by `inv bootstrap` (MariaDB, Trillian, CTFE, TesseraCT) in private
state/results dirs, and checks what a user would: both trees grew, both systems measured with a
positive integrated QPS, the README block rendered from the results, no process left behind.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import bootstrap, paths, proc

pytestmark = pytest.mark.integration
REPO = paths.REPO
INV = [sys.executable, "-m", "invoke"]


def _need_binaries() -> None:
    missing = [b for bins in bootstrap.MODULES.values() for b in bins if not (paths.BIN_DIR / b).exists()]
    if missing:
        pytest.fail(f"binaries missing ({', '.join(missing)}): run `inv bootstrap` first")


@pytest.fixture()
def stack_env(tmp_path):
    _need_binaries()
    readme = tmp_path / "README.md"
    readme.write_text((REPO / "README.md").read_text())
    env = {**os.environ, "CTB_STATE_DIR": str(tmp_path / "state"), "CTB_RESULTS_DIR": str(tmp_path / "results"),
           "CTB_README": str(readme), "CTB_BIN_DIR": str(paths.BIN_DIR)}
    yield env, tmp_path
    # Whatever happened, leave nothing running.
    subprocess.run([*INV, "down"], cwd=REPO, env=env, capture_output=True, timeout=120)


def inv(env, *args, timeout=600):
    return subprocess.run([*INV, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def _pids(state_file: Path) -> dict[str, dict]:
    return json.loads(state_file.read_text())["components"]


def _alive(rec: dict) -> bool:
    # proc.alive identifies a process by its start time since boot (robust to wall-clock steps).
    return proc.alive(rec)


def test_deploy_smoke_bench_report_down(stack_env):
    env, tmp = stack_env
    deployed = inv(env, "deploy")
    assert deployed.returncode == 0, deployed.stderr
    pids = _pids(tmp / "state" / "state.json")
    assert set(pids) == {"mariadb", "trillian_log_server", "trillian_log_signer", "ct_server", "tesseract",
                         "tesseract_static"}

    again = inv(env, "deploy")
    assert again.returncode == 2 and "already up" in again.stderr

    smoke = inv(env, "smoke")
    assert smoke.returncode == 0, smoke.stderr
    assert smoke.stdout.count("SCTs verified") == 2

    run = inv(env, "bench", "--duration", "20", "--warmup", "5", "--qps", "100", "report", timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    doc = json.loads((tmp / "results" / "latest" / "results.json").read_text())
    assert doc["status"] == "ok" and doc["settings"]["loadgen"] == "uniform"
    for system in ("trillian", "tesseract"):
        res = doc["systems"][system]
        assert res["status"] == "ok", res.get("reason")
        assert res["qps"] > 0
        assert res["tree_size_window_end"] > res["tree_size_window_start"] >= res["start_tree_size"]
        assert res["entries_integrated"] == res["tree_size_window_end"] - res["tree_size_window_start"]
        assert res["smoke"]["scts_verified"] == 3
        assert res["loadgen_result"]["counts"]["ok"] > 0 and res["loadgen_result"]["counts"]["bad_sct"] == 0
        assert res["resources"]["system_cpu_seconds"] > 0
        assert res["cost"]["provisioned"]["usd_per_hour"] > 0
        assert res["cost"]["consumed"]["derived"]["usd_per_million_entries"] > 0
    readme = (tmp / "README.md").read_text()
    block = readme.split("<!-- BENCHMARK-RESULTS-START -->")[1].split("<!-- BENCHMARK-RESULTS-END -->")[0]
    assert doc["run_id"] in block and "| trillian | ok" in block and "| tesseract | ok" in block
    assert (tmp / "results" / doc["run_id"] / "pr_body.md").exists()
    assert (tmp / "results" / doc["run_id"] / "logs" / "ct_server.log").exists()

    # The upstream hammers still work as a cross-check (a short window is enough to prove it).
    native = inv(env, "bench", "--loadgen", "native", "--duration", "10", "--warmup", "3", "--qps", "100", timeout=600)
    assert native.returncode == 0, native.stdout[-2000:] + native.stderr[-2000:]
    ndoc = json.loads((tmp / "results" / "latest" / "results.json").read_text())
    assert ndoc["run_id"] != doc["run_id"] and ndoc["settings"]["loadgen"] == "native"
    assert all(ndoc["systems"][s]["status"] == "ok" and ndoc["systems"][s]["qps"] > 0 for s in ("trillian", "tesseract"))

    down = inv(env, "down")
    assert down.returncode == 0, down.stderr
    assert not any(_alive(rec) for rec in pids.values())
    assert not (tmp / "state" / "state.json").exists()
    assert inv(env, "down").returncode == 0          # safe to run twice
    assert inv(env, "smoke").returncode == 2         # nothing deployed: bad usage
