"""Local-stack hygiene (issue 5 §7), on one real deployment.

* every listening socket of every component (and of its child processes) is on 127.0.0.1;
* the database account the logs use is not root and has a generated password, which appears in no
  process command line, log, results file or repo file; MariaDB's root cannot log in over TCP;
* keys, the state file, the CTFE config (it holds the key password) and the state/PKI/database
  directories are readable by their owner only.
"""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import psutil
import pytest

from scripts import bootstrap
from tests import faultkit as fk

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    fk.need_binaries()
    tmp = tmp_path_factory.mktemp("hygiene")
    env = fk.make_env(tmp)
    done = fk.inv(env, "deploy", timeout=180)
    assert done.returncode == 0, done.stdout[-1500:] + done.stderr[-1500:]
    yield env, fk.load_state(env)
    fk.down(env)
    fk.no_leaks(env)


def _tree(pid: int) -> list[psutil.Process]:
    p = psutil.Process(pid)
    return [p] + p.children(recursive=True)


def test_every_listener_is_on_loopback(deployed):
    env, st = deployed
    listeners = []
    for name, rec in st["components"].items():
        for p in _tree(rec["pid"]):
            for conn in p.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    listeners.append((name, conn.laddr.ip, conn.laddr.port))
    assert listeners, "no listener found at all"
    exposed = [f"{n} on {ip}:{port}" for n, ip, port in listeners if ip != "127.0.0.1"]
    assert not exposed, f"listening beyond loopback: {exposed}"
    # Every port the state file advertises is really one of those loopback listeners.
    assert set(fk.ports_of(st)) <= {port for _n, _ip, port in listeners}


def test_database_user_is_not_root_and_has_a_generated_password(deployed):
    env, st = deployed
    db = st["mariadb"]
    assert db["user"] not in ("root", "") and db["host"] == "127.0.0.1"
    password = db["password"]
    assert len(password) >= 20 and not password.isalpha()
    # The password is a secret: not on any command line (readable by every local user), not in a log,
    # not in the recorded flags.
    for name, rec in st["components"].items():
        for p in _tree(rec["pid"]):
            assert password not in " ".join(p.cmdline()), f"{name}: DB password on its command line"
        assert password not in Path(rec["log"]).read_text(errors="replace"), f"{name}: DB password in its log"
        assert password not in str(rec.get("flags")) and password not in rec.get("cmd", "")
    tracked = subprocess.run(["git", "-C", str(fk.REPO), "grep", "-l", "-F", password], capture_output=True, text=True)
    assert tracked.stdout == "", f"password found in repo files: {tracked.stdout}"


def test_mariadb_root_cannot_log_in_over_tcp(deployed):
    env, st = deployed
    client = bootstrap.ensure_mariadb(log=lambda *a: None)["client"]
    for password in ("", "root"):
        out = subprocess.run([client, "--no-defaults", "--protocol=tcp", "-h127.0.0.1", f"-P{st['mariadb']['port']}",
                              "-uroot", f"--password={password}", "-e", "SELECT 1"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode != 0, f"root logged in over TCP with password {password!r}"
        assert "Access denied" in out.stderr, out.stderr


def _mode(path: str | Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_secrets_and_state_are_owner_only(deployed):
    env, st = deployed
    state_dir = Path(env["CTB_STATE_DIR"])
    pki_dir = Path(st["pki"]["dir"])
    assert _mode(fk.state_file(env)) == 0o600
    assert _mode(state_dir) & 0o077 == 0, oct(_mode(state_dir))
    assert _mode(pki_dir) & 0o077 == 0, oct(_mode(pki_dir))
    keys = [p for p in pki_dir.rglob("*") if p.is_file() and ("key" in p.name or p.name.endswith(".password"))]
    keys = [p for p in keys if "pub" not in p.name]
    assert len(keys) >= 5, keys
    loose = [f"{p.relative_to(pki_dir)} {oct(_mode(p))}" for p in keys if _mode(p) & 0o077]
    assert not loose, f"private keys readable by others: {loose}"
    ctfe_config = Path(st["systems"]["trillian"]["log_config"])
    assert _mode(ctfe_config) & 0o077 == 0, "CTFE config holds the key password"
    datadir = Path(st["components"]["mariadb"]["flags"]["datadir"])
    assert _mode(datadir.parent) & 0o077 == 0, "MariaDB's directory (data and socket)"
