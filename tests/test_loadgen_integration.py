"""The uniform generator against both real logs (issue 4): verified SCTs, and the signed tree grows.

Deploys the real local stack into a private state dir (binaries from `inv bootstrap`), runs the
generator briefly at the same rate and chain shape against Trillian/CTFE and TesseraCT, reading tree
size from the verified STH / checkpoint, then takes the stack down again.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import bootstrap, paths
from scripts.ctclient import TreeReader
from scripts.loadgen import LoadSpec, run

pytestmark = pytest.mark.integration
REPO = paths.REPO


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    missing = [b for bins in bootstrap.MODULES.values() for b in bins if not (paths.BIN_DIR / b).exists()]
    if missing:
        pytest.fail(f"binaries missing ({', '.join(missing)}): run `inv bootstrap` first")
    tmp = tmp_path_factory.mktemp("stack")
    env = {**os.environ, "CTB_STATE_DIR": str(tmp / "state"), "CTB_RESULTS_DIR": str(tmp / "results"),
           "CTB_BIN_DIR": str(paths.BIN_DIR)}
    try:
        up = subprocess.run([sys.executable, "-m", "scripts.deploy"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
        assert up.returncode == 0, up.stderr
        yield json.loads((tmp / "state" / "state.json").read_text())
    finally:
        subprocess.run([sys.executable, "-m", "scripts.down"], cwd=REPO, env=env, capture_output=True, timeout=120)


@pytest.mark.parametrize("system", ["trillian", "tesseract"])
def test_uniform_load_gets_verified_scts_and_tree_growth(stack, system):
    info = stack["systems"][system]
    pki_dir = Path(stack["pki"]["dir"])
    reader = TreeReader(system, info)
    result = run(LoadSpec(url=info["add_chain_url"], log_public_key=info["public_key"],
                          intermediate=str(pki_dir / "intermediate.pem"),
                          intermediate_key=str(pki_dir / "intermediate.key.pem"),
                          rate=40, duration_s=3, max_in_flight=500, timeout_s=20, label=system,
                          tree_size_probe=lambda: reader.read().size, probe_interval_s=0.5,
                          integration_wait_s=15))
    assert result["status"] == "completed"
    counts = result["counts"]
    assert counts["ok"] == 120, (counts, result["bad_sct_reasons"], result["status_codes"])
    assert sum(counts.values()) == counts["ok"]
    integ = result["integration"]
    assert integ["probe_errors"] == 0, integ["probe_last_error"]
    grown = integ["tree_sizes"][-1][1] - integ["start_tree_size"]
    assert grown >= 120
    assert integ["integrated"] == integ["samples"] > 0
    # TesseraCT SCTs carry the leaf index; CTFE's do not, so its merge delay is the FIFO estimate.
    assert integ["method"] == ("leaf_index" if system == "tesseract" else "fifo_estimate")
    if system == "tesseract":  # the publication awaiter: an SCT only after its checkpoint is out
        assert result["latency_ms"]["p50"] > 100
