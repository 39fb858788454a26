"""The SSH target: the local stack on a remote Linux host, with the load from here or from `--loadgen-host`.

The host runs the SAME step code as the local target — `python -m scripts.deploy`, `scripts.smoke`,
`scripts.down`, `hammer.measure`, `metrics.Sampler` — from a copy of this harness; only the runner
differs (invoke's Context here, Fabric's Connection there, see scripts/sshhost.py). This module moves
files, runs those steps, and combines what they return into the same results document as `local`.

Layout on a host (workdir `~/ct-bench`, or `$CTB_SSH_WORKDIR`):

    harness/   scripts/, schemas/, costs.json, requirements.txt, tools/*/go.mod, Trillian's storage.sql
    venv/      Python venv with requirements.txt's pins (pip; redone only when the pins change)
    bin/       the pinned binaries from this machine's bin/ (uploaded when their sha256 differs)
    stack/     CTB_STATE_DIR, CTB_PKI_DIR, CTB_RESULTS_DIR of the deployed stack
    loadgen/   the same for a load generator host

Measuring where the load runs: the load host runs `hammer.measure` (generator, verified tree growth,
the run guards) against the stack's endpoints, while a sampler agent on the stack host watches the
components (CPU/RSS, deaths, stalls, CTFE's accepted-SCT counter). The two records are joined on the
wall clock and judged again with the same pure functions (`hammer.judge`, `metrics.analyse`).

Endpoints: the write/read endpoints bind the address the SSH connection arrived on (from the host's
$SSH_CONNECTION), or `$CTB_SSH_BIND_ADDRESS`; everything else stays on the host's loopback.

Every step that can fail checks first: the host must be reachable, authenticate with your keys, be
in known_hosts, run Linux on this machine's CPU architecture with Python >= 3.10 and venv, and (for the
stack) have MariaDB — installed only with `--install-mariadb` (or CTB_SSH_INSTALL_MARIADB=1), with root
or passwordless sudo. A deploy that fails or is interrupted half-way is stopped again on the host.

`inv <step> --target ssh` calls the step functions below; `python -m scripts.remote <step> --host ...`
does the same without invoke (and takes --install-mariadb). `python -m scripts.remote agent ...` is the
host side: each agent command writes its JSON answer to --out.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime as dt
import hashlib
import json
import os
import platform
import posixpath
import shlex
import signal
import socket
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from scripts import bootstrap as bootstrap_mod
from scripts import config, ctclient, hammer, paths, proc, results, state
from scripts import metrics as metrics_mod
from scripts import deploy as deploy_mod
from scripts.errors import BadInput, HarnessError, Interrupted, RunFailed, cli_entry, one_line

if TYPE_CHECKING:  # the host side runs this module without Fabric installed
    from scripts.sshhost import Runner

STACK_BINARIES = ("trillian_log_server", "trillian_log_signer", "createtree", "ct_server", "posix")
LOADGEN_BINARIES = ("ct_hammer", "hammer")
MIN_PYTHON = (3, 10)
DEFAULT_WORKDIR = "ct-bench"
SCHEMA_NAME = "trillian-storage.sql"
RECORD_NAME = "ssh-target.json"
LOG_CONFIG_NAME = "ct_hammer_log_config.textproto"
HARNESS_GLOBS = ("scripts/**/*.py", "schemas/*.json", "costs.json", "requirements.txt", "tools/*/go.mod")
# Never copied to a load generator host: the logs' signing keys and the root CA key (the generators
# sign leaves with the intermediate).
NOT_FOR_LOADGEN = ("./logs/*.key.pem", "./logs/*.password", "./root.key.pem")

PROBE_TIMEOUT_S = 30
STEP_TIMEOUT_S = 300
VENV_TIMEOUT_S = 900
DEPLOY_TIMEOUT_S = 600
APT_TIMEOUT_S = 1200
SAMPLER_START_S = 30
INTERRUPT_GRACE_S = 90  # a deploy interrupted mid-way stops what it started; MariaDB may take a while
AGENT = "scripts.remote"


# --------------------------------------------------------------------------- pure: checks and translations


_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}


def check_host(probe: dict[str, Any], *, where: str, need_mariadb: bool, install_mariadb: bool,
               local_machine: str = "") -> bool:
    """BadInput (one line) if the probed host cannot run the harness; True if MariaDB must be installed."""
    if probe.get("system") != "Linux":
        raise BadInput(f"{where} is not a Linux host ({probe.get('system') or 'unknown system'}): "
                       "the SSH target runs the stack on Linux only; nothing was changed")
    theirs, ours = (_ARCH.get(m.lower(), m.lower()) for m in (probe.get("machine") or "", local_machine))
    if ours and theirs != ours:
        raise BadInput(f"{where} is {theirs or 'an unknown architecture'} but the binaries in bin/ are built for "
                       f"{ours}: run the harness from a {theirs} machine; nothing was changed")
    if not probe.get("python"):
        raise BadInput(f"{where}: python3 is not installed (need {'.'.join(map(str, MIN_PYTHON))} or newer); "
                       "nothing was changed")
    if tuple(probe["python"])[:2] < MIN_PYTHON:
        have = ".".join(str(x) for x in probe["python"])
        raise BadInput(f"{where}: python3 {have} is too old (need {'.'.join(map(str, MIN_PYTHON))} or newer); "
                       "nothing was changed")
    if not probe.get("venv"):
        raise BadInput(f"{where}: python3 has no venv/ensurepip (install python3-venv there); nothing was changed")
    missing = [t for t, ok in (probe.get("tools") or {}).items() if not ok]
    if missing:
        raise BadInput(f"{where}: missing {', '.join(missing)}; nothing was changed")
    if not need_mariadb or all((probe.get("mariadb") or {}).values()):
        return False
    if not install_mariadb:
        raise BadInput(f"{where}: MariaDB server is not installed: install mariadb-server there, or pass "
                       "--install-mariadb (CTB_SSH_INSTALL_MARIADB=1) to let the harness apt-get it; "
                       "nothing was changed")
    if not probe.get("apt"):
        raise BadInput(f"{where}: MariaDB is missing and there is no apt-get to install it: install "
                       "mariadb-server yourself; nothing was changed")
    if not probe.get("sudo"):
        raise BadInput(f"{where}: installing MariaDB needs root or passwordless sudo, and this user has neither; "
                       "nothing was changed")
    return True


def bind_address(probe: dict[str, Any], override: str = "") -> str:
    """The address the write/read endpoints listen on: the one SSH arrived on, unless overridden."""
    address = override.strip()
    if not address:
        parts = str(probe.get("ssh_connection") or "").split()
        address = parts[2] if len(parts) == 4 else ""
    address = address.removeprefix("::ffff:")
    if not address:
        raise BadInput("cannot tell which address the host was reached on (no SSH_CONNECTION there): "
                       "set CTB_SSH_BIND_ADDRESS to an IPv4 address of the host")
    if ":" in address:
        raise BadInput(f"the host was reached over IPv6 ({address}); the stack binds IPv4 only: "
                       "set CTB_SSH_BIND_ADDRESS to an IPv4 address of the host (or 0.0.0.0)")
    return address


def host_requirements(text: str) -> list[str]:
    """The pinned requirement lines of requirements.txt: the host runs the same modules, so it gets all of
    them (a subset broke as soon as a step module grew an import)."""
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


_URL_KEYS = ("base_url", "add_chain_url", "sth_url", "read_url", "checkpoint_url")
_WILDCARDS = ("0.0.0.0", "")


def _rebase(path: str, old: str, new: str) -> str:
    rel = posixpath.relpath(path, old)
    if rel.startswith(".."):
        raise RunFailed(f"{path} is not under the stack's PKI dir {old}")
    return posixpath.join(new, rel)


def _reachable(url_or_hostport: str, address: str) -> str:
    """Replace a wildcard listen address (0.0.0.0) in an endpoint with the host's reachable address."""
    for wildcard in _WILDCARDS:
        for prefix in ("http://", ""):
            if url_or_hostport.startswith(f"{prefix}{wildcard}:"):
                return f"{prefix}{address}:" + url_or_hostport[len(prefix) + len(wildcard) + 1:]
    return url_or_hostport


def loadgen_state(st: dict[str, Any], *, pki_dir: str, log_config: str, address: str) -> dict[str, Any]:
    """The stack's state as the load host sees it: its own PKI copy, reachable endpoints, no components.

    Components are watched on the stack host by the sampler agent, so `hammer.measure` on the load
    host gets none; CTFE's accepted-SCT counter is read there too (its metrics port is loopback-only).
    """
    out = copy.deepcopy(st)
    stack_pki = st["pki"]["dir"]
    out["pki"] = {**st["pki"], "dir": pki_dir, "roots": _rebase(st["pki"]["roots"], stack_pki, pki_dir)}
    out["components"] = {}
    for info in out["systems"].values():
        info["components"] = []
        info.pop("accepted_counter", None)
        info["public_key"] = _rebase(info["public_key"], stack_pki, pki_dir)
        if "log_config" in info:
            info["log_config"] = log_config
        for key in _URL_KEYS:
            if key in info:
                info[key] = _reachable(info[key], address)
        if "ctfe_host" in info:
            info["ctfe_host"] = _reachable(info["ctfe_host"], address)
    return out


def _value_at(points: list[list[float]], t: float) -> float | None:
    """The last (time, value) reading at or before t (the first one if none is before)."""
    before = [p for p in points if p[0] <= t]
    return (before[-1] if before else points[0])[1] if points else None


def combine(obs: dict[str, Any], stack: dict[str, Any], settings: config.Settings, components: list[str]
            ) -> dict[str, Any]:
    """Join the load host's observations with the stack host's sampler record, and judge again (pure).

    Both sides' monotonic times are mapped onto the load host's clock through their wall-clock offsets.
    A component that died or stalled on the stack before the window ended fails the run; resources are
    the stack components' and the generator's usage over the window; CPU saturation of either machine
    is labelled (the generator's machine being saturated makes the run client-bound).
    """
    obs = copy.deepcopy(obs)
    delta = float(stack["clock_offset"]) - float(obs["clock_offset"])  # stack monotonic + delta = load host's
    shift = lambda series: [[round(p[0] + delta, 3), *p[1:]] for p in series]  # noqa: E731
    load_samples = obs.get("samples") or {}
    generators = sorted((load_samples.get("series") or {}).keys())
    obs["samples"] = {
        "series": {**{n: shift(s) for n, s in stack["samples"]["series"].items()}, **(load_samples.get("series") or {})},
        "machine": shift(stack["samples"].get("machine", [])),
        "cores": stack["samples"].get("cores"),
        "loadgen_machine": load_samples.get("machine", []),
        "loadgen_cores": load_samples.get("cores"),
    }
    end = obs.get("window_end", float("inf"))
    died = sorted(n for n, t in stack.get("died", {}).items() if t + delta <= end)
    stalled = sorted(n for n, t in stack.get("stalled", {}).items() if t + delta <= end)
    if died:
        obs["dead_components"] = died
    if stalled:
        obs["stalled_components"] = stalled
    accepted = [[p[0] + delta, p[1]] for p in stack.get("accepted", [])]
    if accepted and "window_start" in obs and "window_end" in obs:
        a0, a1 = _value_at(accepted, obs["window_start"]), _value_at(accepted, obs["window_end"])
        if a0 is not None and a1 is not None:
            obs["accepted_in_window"] = int(a1 - a0)
    # What died on the stack explains a read failure better than the failure itself.
    status, reason = hammer.judge({**obs, "error": ""} if died or stalled else obs, settings.duration)
    obs["status"], obs["reason"] = status, reason
    if status != "ok":
        obs["qps"] = None
        for key in ("stability", "sustainable", "resources", "limited_by"):
            obs.pop(key, None)
        return obs
    obs["qps"] = round(obs["entries_integrated"] / obs["window_s"], 2)
    obs["sustainable"] = hammer.sustainable(obs)
    resources = metrics_mod.analyse(obs["samples"], components, generators, obs["window_start"], obs["window_end"])
    load_share = metrics_mod.analyse({"machine": obs["samples"]["loadgen_machine"]}, [], [], obs["window_start"],
                                 obs["window_end"])["machine_cpu_share"]
    resources["loadgen_machine_cpu_share"] = load_share
    resources["loadgen_cores"] = obs["samples"]["loadgen_cores"]
    if load_share is not None and load_share >= metrics_mod.SATURATED_SHARE:
        resources["labels"].append("load generator machine CPU saturated")
    if obs.get("generator_client_bound") or (load_share is not None and load_share >= metrics_mod.SATURATED_SHARE):
        if "client-bound" not in resources["labels"]:
            resources["labels"].append("client-bound")
    obs["resources"] = resources
    obs["limited_by"] = hammer.limited_by(obs)
    return obs


# --------------------------------------------------------------------------- places: a role on a runner


@dataclass
class Place:
    """One role (stack or loadgen) on one runner: its Python, harness copy, binaries and own dirs."""

    runner: Runner
    role: str
    python: str
    harness: str
    bin_dir: str
    base: str
    bind: str = "127.0.0.1"
    schema: str = ""

    @property
    def name(self) -> str:
        return self.runner.name

    def path(self, *parts: str) -> str:
        return posixpath.join(self.base, *parts)

    def env(self) -> dict[str, str]:
        env = {"CTB_STATE_DIR": self.path("state"), "CTB_RESULTS_DIR": self.path("results"),
               "CTB_PKI_DIR": self.path("pki"), "CTB_BIN_DIR": self.bin_dir, "CTB_README": self.path("README.md"),
               "CTB_BIND_ADDRESS": self.bind, "PYTHONUNBUFFERED": "1"}
        if self.schema:
            env["CTB_TRILLIAN_SCHEMA"] = self.schema
        return env

    def module(self, module: str, *args: str, timeout: float, stream: bool = True, check: bool = True,
               pidfile: str | None = None):
        """`python -m <module> args` on the host, in the harness copy, with this role's dirs."""
        what = f"python -m {module}" + (f" {args[1]}" if module == AGENT and len(args) > 1 else "")
        if pidfile:
            self.runner.run(["mkdir", "-p", posixpath.dirname(pidfile)], timeout=30)
        return self.runner.run([self.python, "-m", module, *args], env=self.env(), cwd=self.harness,
                               timeout=timeout, stream=stream, check=check, what=what, pidfile=pidfile)

    def agent(self, command: str, *args: str, timeout: float = STEP_TIMEOUT_S, stream: bool = False) -> Any:
        """Run an agent command on the host and return the JSON it wrote."""
        out = self.path("state", f"agent-{command}.json")
        self.module(AGENT, "agent", command, "--out", out, *args, timeout=timeout, stream=stream)
        return json.loads(self.runner.read_text(out))

    def put_json(self, name: str, doc: Any) -> str:
        remote = self.path("state", name)
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / name
            local.write_text(json.dumps(doc))
            self.runner.put(local, remote)
        return remote


def workdir(probe: dict[str, Any]) -> str:
    chosen = os.environ.get("CTB_SSH_WORKDIR") or DEFAULT_WORKDIR
    return chosen if chosen.startswith("/") else posixpath.join(probe["home"], chosen)


def remote_place(runner: Runner, work: str, role: str, bind: str = "127.0.0.1") -> Place:
    return Place(runner, role, python=f"{work}/venv/bin/python", harness=f"{work}/harness", bin_dir=f"{work}/bin",
                 base=f"{work}/{role}", bind=bind, schema=f"{work}/harness/{SCHEMA_NAME}")


def local_place() -> Place:
    """The load generator on this machine: this checkout, this venv, this bin/, its own dirs."""
    from scripts.sshhost import LocalRunner
    return Place(LocalRunner(), "loadgen", python=sys.executable, harness=str(paths.REPO), bin_dir=str(paths.BIN_DIR),
                 base=str(paths.STATE_DIR / "ssh-loadgen"))


# --------------------------------------------------------------------------- connect, probe, provision

PROBE = r"""
import json, os, platform, shutil, subprocess, sys
ask = json.loads(sys.argv[1])
def find(names):
    for n in names:
        if shutil.which(n):
            return shutil.which(n)
        for d in ask["sbin"]:
            if os.access(os.path.join(d, n), os.X_OK):
                return os.path.join(d, n)
    return None
def sudo_ok():
    if os.getuid() == 0:
        return True
    if not ask["check_sudo"] or not shutil.which("sudo"):
        return False
    try:
        return subprocess.run(["sudo", "-n", "true"], stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=10).returncode == 0
    except Exception:
        return False
try:
    import ensurepip, venv
    has_venv = True
except ImportError:
    has_venv = False
print(json.dumps({"system": platform.system(), "machine": platform.machine(), "python": list(sys.version_info[:3]),
                  "venv": has_venv, "uid": os.getuid(), "home": os.path.expanduser("~"),
                  "ssh_connection": os.environ.get("SSH_CONNECTION", ""),
                  "mariadb": {k: find(v) for k, v in ask["mariadb"].items()},
                  "tools": {t: bool(shutil.which(t)) for t in ("tar", "sha256sum")},
                  "apt": bool(shutil.which("apt-get")), "sudo": sudo_ok()}))
"""


def probe_host(runner: Runner, *, check_sudo: bool = False) -> dict[str, Any]:
    """What the host is (read-only): OS, Python, venv, MariaDB, sudo, the address SSH arrived on."""
    kind = runner.run(["uname", "-s"], timeout=PROBE_TIMEOUT_S, check=False)
    if kind.code != 0 or kind.stdout.strip() != "Linux":
        return {"system": kind.stdout.strip() if kind.code == 0 else "no POSIX uname"}
    if runner.run(["sh", "-c", "command -v python3"], timeout=PROBE_TIMEOUT_S, check=False).code != 0:
        return {"system": "Linux", "python": []}
    ask = {"sbin": list(bootstrap_mod._SBIN), "check_sudo": check_sudo,
           "mariadb": {"server": bootstrap_mod.MARIADB_SERVER, "install_db": bootstrap_mod.MARIADB_INSTALL_DB,
                       "client": bootstrap_mod.MARIADB_CLIENT}}
    out = runner.run(["python3", "-c", PROBE, json.dumps(ask)], timeout=PROBE_TIMEOUT_S, what="host probe")
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RunFailed(f"{runner.name}: host probe printed no JSON") from None


def install_mariadb_wanted(opts: dict[str, Any]) -> bool:
    return bool(opts.get("install_mariadb")) or \
        os.environ.get("CTB_SSH_INSTALL_MARIADB", "").strip().lower() in ("1", "true", "yes", "on")


def open_host(spec: str, *, flag: str, need_mariadb: bool = False, install_mariadb: bool = False
              ) -> tuple[Runner, dict[str, Any], bool]:
    """Connect and check the host before anything is changed on it."""
    from scripts import sshhost
    runner = sshhost.connect(spec, flag=flag)
    try:
        probe = probe_host(runner, check_sudo=install_mariadb)
        needs_install = check_host(probe, where=runner.name, need_mariadb=need_mariadb, install_mariadb=install_mariadb,
                                   local_machine=platform.machine())
    except BaseException:
        runner.close()
        raise
    return runner, probe, needs_install


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def trillian_schema() -> Path:
    return deploy_mod.module_dir("trillian", deploy_mod.UPSTREAM_MODULES["trillian"]) / "storage/mysql/schema/storage.sql"


def push_tree(runner: Runner, local_dir: Path, remote_dir: str, *, excludes: tuple[str, ...] = ()) -> None:
    """Replace remote_dir with a copy of local_dir (one tarball, extracted on the host)."""
    with tempfile.TemporaryDirectory() as tmp:
        tgz = Path(tmp) / "tree.tgz"
        with tarfile.open(tgz, "w:gz") as tar:
            tar.add(local_dir, arcname=".", filter=lambda ti: None if any(
                Path(ti.name).match(e.removeprefix("./")) for e in excludes) else ti)
        remote_tgz = remote_dir.rstrip("/") + ".tgz"
        runner.run(["mkdir", "-p", posixpath.dirname(remote_dir)], timeout=30)
        runner.put(tgz, remote_tgz)
    script = (f"rm -rf {shlex.quote(remote_dir)}.new && mkdir -p -m 700 {shlex.quote(remote_dir)}.new && "
              f"tar xzf {shlex.quote(remote_tgz)} -C {shlex.quote(remote_dir)}.new && rm -rf {shlex.quote(remote_dir)} && "
              f"mv {shlex.quote(remote_dir)}.new {shlex.quote(remote_dir)} && chmod 700 {shlex.quote(remote_dir)} && "
              f"rm -f {shlex.quote(remote_tgz)}")
    runner.run(["sh", "-c", script], timeout=STEP_TIMEOUT_S, what=f"unpack {posixpath.basename(remote_dir)}")


def fetch_tree(runner: Runner, remote_dir: str, local_dir: Path, *, excludes: tuple[str, ...] = (),
               scratch: str) -> None:
    """Copy remote_dir's files into local_dir (one tarball made on the host)."""
    remote_tgz = posixpath.join(scratch, f"fetch-{os.getpid()}-{time.monotonic_ns()}.tgz")
    runner.run(["mkdir", "-p", scratch], timeout=30)
    runner.run(["tar", "czf", remote_tgz, *[f"--exclude={e}" for e in excludes], "-C", remote_dir, "."],
               timeout=STEP_TIMEOUT_S, what=f"pack {remote_dir}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tgz = Path(tmp) / "tree.tgz"
            runner.get(remote_tgz, tgz)
            local_dir.mkdir(parents=True, exist_ok=True)
            with tarfile.open(tgz) as tar:
                tar.extractall(local_dir, filter="data")
    finally:
        runner.run(["rm", "-f", remote_tgz], timeout=30, check=False)


def put_harness(place: Place) -> None:
    """Replace the host's harness copy with this checkout's (every step: the host runs the code you run)."""
    with tempfile.TemporaryDirectory() as tmp:
        push_tree(place.runner, _harness_dir(Path(tmp)), place.harness)


def _harness_dir(tmp: Path) -> Path:
    """This checkout's host-side files, laid out in a temp dir (pure copy, no processes)."""
    import shutil
    root = tmp / "harness"
    for pattern in HARNESS_GLOBS:
        for path in sorted(paths.REPO.glob(pattern)):
            if "__pycache__" not in path.parts:
                (root / path.relative_to(paths.REPO)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, root / path.relative_to(paths.REPO))
    shutil.copyfile(trillian_schema(), root / SCHEMA_NAME)
    return root


def provision(place: Place, probe: dict[str, Any], binaries: tuple[str, ...], *, install_mariadb: bool = False,
              log: Callable[[str], None] = print) -> None:
    """Harness copy, venv (when the pins change), binaries (when their sha256 differs), MariaDB if asked."""
    runner, work = place.runner, posixpath.dirname(place.harness)
    local_bins = {b: paths.BIN_DIR / b for b in binaries}
    missing = [b for b, p in local_bins.items() if not p.exists()]
    if missing:
        raise BadInput(f"{', '.join(missing)} not built in {paths.BIN_DIR}: run `inv bootstrap` first")
    runner.run(["mkdir", "-p", "-m", "700", work, place.base, place.bin_dir], timeout=30)
    put_harness(place)
    pins = host_requirements((paths.REPO / "requirements.txt").read_text())
    stamp = hashlib.sha256(json.dumps([pins, probe.get("python")]).encode()).hexdigest()
    venv = f"{work}/venv"
    if runner.run(["cat", f"{venv}/.ctb-stamp"], timeout=30, check=False).stdout.strip() != stamp:
        log(f"{runner.name}: creating the Python venv ({len(pins)} pinned packages) ...")
        runner.run(["rm", "-rf", venv], timeout=120)
        runner.run(["python3", "-m", "venv", venv], timeout=STEP_TIMEOUT_S, what="python3 -m venv")
        runner.run([f"{venv}/bin/pip", "install", "-q", "--disable-pip-version-check", *pins], timeout=VENV_TIMEOUT_S,
                   what="pip install (pinned requirements)")
        runner.run(["sh", "-c", f"echo {stamp} > {shlex.quote(venv)}/.ctb-stamp"], timeout=30)
    have = place.agent("digests", "--paths", *[f"{place.bin_dir}/{b}" for b in binaries])
    stale = [b for b in binaries if have.get(f"{place.bin_dir}/{b}") != _digest(local_bins[b])]
    if stale:
        size = sum(local_bins[b].stat().st_size for b in stale) / 2**20
        log(f"{runner.name}: uploading {', '.join(stale)} ({size:.0f} MiB) ...")
        for b in stale:
            tmp_path = f"{place.bin_dir}/.{b}.upload"
            runner.put(local_bins[b], tmp_path)
            runner.run(["sh", "-c", f"chmod 755 {shlex.quote(tmp_path)} && mv {shlex.quote(tmp_path)} "
                                    f"{shlex.quote(place.bin_dir + '/' + b)}"], timeout=60)
    if install_mariadb:
        log(f"{runner.name}: installing mariadb-server (--install-mariadb) ...")
        sudo = [] if probe.get("uid") == 0 else ["sudo", "-n"]
        apt = [*sudo, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]
        runner.run([*apt, "update", "-q"], timeout=APT_TIMEOUT_S, what="apt-get update")
        runner.run([*apt, "install", "-y", "-q", "--no-install-recommends", "mariadb-server", "mariadb-client"],
                   timeout=APT_TIMEOUT_S, what="apt-get install mariadb-server")


# --------------------------------------------------------------------------- the local record


def record_path() -> Path:
    return paths.STATE_DIR / RECORD_NAME


def load_record() -> dict[str, Any] | None:
    path = record_path()
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path} is unreadable ({one_line(exc)}): remove it after checking the host") from None
    if not isinstance(doc, dict) or not doc.get("host") or not doc.get("workdir"):
        raise BadInput(f"{path} has no host/workdir: remove it after checking the host")
    return doc


def save_record(doc: dict[str, Any]) -> None:
    write_json(record_path(), doc)


def write_json(path: Path, doc: Any) -> None:
    write_private(path, json.dumps(doc, indent=2, sort_keys=True))


def write_private(path: Path, text: str) -> None:
    """Atomically, mode 0600 from the start (a state copy holds the database password)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    results.write_atomic(path, text)


def _settings(opts: dict[str, Any]) -> config.Settings:
    return config.settings(settings_values(opts))


def settings_values(values: dict[str, Any]) -> dict[str, Any]:
    """Settings (or opts) as the flag values `config.settings` accepts again (lists joined, empties dropped)."""
    out = {}
    for key, value in values.items():
        if key not in config.DEFAULTS or value is None:
            continue
        if isinstance(value, (list, tuple)):
            if not value:
                continue
            value = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
        out[key] = value
    return out


def _stack(opts: dict[str, Any]) -> tuple[Place, dict[str, Any]]:
    """The deployed stack's place, from the record this machine kept at deploy time."""
    record = load_record()
    if record is None:
        raise BadInput("nothing is deployed over SSH from this machine: run `inv deploy --target ssh --host ...`")
    if opts.get("host") and opts["host"].strip() != record["host"]:
        raise BadInput(f"the SSH deployment is on {record['host']}, not {opts['host']}: "
                       "run `inv down --target ssh` first to move it")
    from scripts import sshhost
    runner = sshhost.connect(record["host"])
    place = remote_place(runner, record["workdir"], "stack", record.get("bind", "127.0.0.1"))
    try:
        put_harness(place)
    except BaseException:
        runner.close()
        raise
    return place, record


def _read_state(place: Place) -> dict[str, Any]:
    """The host's state file, validated by state.load on a local copy."""
    copy_path = paths.STATE_DIR / "ssh-stack-state.json"
    write_private(copy_path, place.runner.read_text(place.path("state", "state.json")))
    return state.load(copy_path)


# --------------------------------------------------------------------------- steps (tasks.py dispatches here)


def bootstrap(opts: dict[str, Any], *, log=print) -> None:
    """Build the pinned binaries here; with a host (bench.host / INVOKE_BENCH_HOST) also provision it."""
    go = bootstrap_mod.check_go()
    for module, what in bootstrap_mod.build_tools(go, log=log).items():
        log(f"tools/{module}: {what}")
    if not opts.get("host"):
        log("bootstrap: binaries ready; `inv deploy --target ssh --host ...` provisions the host")
        return
    install = install_mariadb_wanted(opts)
    runner, probe, needs = open_host(opts["host"], flag="--host", need_mariadb=True, install_mariadb=install)
    try:
        if opts.get("dry_run"):
            log(f"bootstrap (dry run): would provision {runner.name} in {workdir(probe)}"
                + (" and install mariadb-server" if needs else ""))
            return
        place = remote_place(runner, workdir(probe), "stack")
        provision(place, probe, STACK_BINARIES, install_mariadb=needs, log=log)
        log(f"bootstrap: {runner.name} ready in {workdir(probe)}")
    finally:
        runner.close()


def _remote_up(place: Place) -> list[str]:
    """Components of an earlier deployment still running on the host ([] if none or no harness yet)."""
    exists = place.runner.run(["test", "-f", place.path("state", "state.json")], timeout=30, check=False)
    if exists.code != 0:
        return []
    res = place.module(AGENT, "agent", "status", "--out", place.path("state", "agent-status.json"),
                       timeout=STEP_TIMEOUT_S, stream=False, check=False)
    if res.code != 0:
        return ["(unknown: a state file exists)"]
    return json.loads(place.runner.read_text(place.path("state", "agent-status.json")))["running"]


def deploy(opts: dict[str, Any], *, log=print) -> dict[str, Any]:
    """Check the host, put the harness and binaries there, and run `python -m scripts.deploy` on it."""
    settings = _settings(opts)
    record = load_record()
    if record is not None and record["host"] != settings.host.strip():
        raise BadInput(f"an SSH deployment is recorded on {record['host']}: run `inv down --target ssh` first")
    install = install_mariadb_wanted(opts)
    runner, probe, needs = open_host(settings.host, flag="--host", need_mariadb=True, install_mariadb=install)
    try:
        bind = bind_address(probe, os.environ.get("CTB_SSH_BIND_ADDRESS", ""))
        place = remote_place(runner, workdir(probe), "stack", bind)
        if settings.dry_run:
            log(f"deploy (dry run): would provision {runner.name} in {workdir(probe)}, start "
                f"{', '.join(settings.systems)} with endpoints on {bind}"
                + (", after installing mariadb-server" if needs else ""))
            return {}
        running = _remote_up(place) if runner.run(["test", "-x", place.python], timeout=30, check=False).code == 0 \
            else []
        if running:
            raise BadInput(f"a deployment is already up on {runner.name} (running: {', '.join(running)}): "
                           "run `inv down --target ssh` first")
        started = time.monotonic()
        provision(place, probe, STACK_BINARIES, install_mariadb=needs, log=log)
        save_record({"host": settings.host.strip(), "workdir": workdir(probe), "bind": bind,
                     "systems": list(settings.systems), "status": "deploying",
                     "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
        pidfile = place.path("state", "deploy.pid")
        try:
            place.module("scripts.deploy", "--systems", ",".join(settings.systems), timeout=DEPLOY_TIMEOUT_S,
                         pidfile=pidfile)
            st = _read_state(place)
        except BaseException:
            # The host's deploy stops what it started when it fails by itself. Interrupted here (or with the
            # connection lost) it would run on: interrupt it there — it then stops what it started — and
            # stop whatever its state file still names (idempotent).
            _cleanup_after_failed_deploy(place, pidfile, settings.host.strip(), log=log)
            raise
        record = load_record() or {}
        record.update(status="deployed", deploy_seconds=round(time.monotonic() - started, 1))
        save_record(record)
        log(f"deploy: up on {runner.name} in {record['deploy_seconds']}s (endpoints on {bind}; "
            f"record {record_path()})")
        return st
    finally:
        runner.close()


def _cleanup_after_failed_deploy(place: Place, pidfile: str, spec: str, *, log=print) -> None:
    """Interrupt the host's deploy if it still runs, then stop what its state names; on a lost connection
    try once more over a new one."""
    from scripts import sshhost
    error: HarnessError | None = None
    for attempt in range(2):
        here = place
        try:
            if attempt:
                here = dataclasses.replace(place, runner=sshhost.connect(spec))
            here.agent("interrupt", "--pidfile", pidfile, "--expect", "scripts.deploy", timeout=STEP_TIMEOUT_S)
            here.agent("down", timeout=STEP_TIMEOUT_S)
            record_path().unlink(missing_ok=True)
            return
        except HarnessError as exc:
            error = exc
        finally:
            if here is not place:
                here.runner.close()
    # Keep the record: `inv down --target ssh` retries from it.
    log(f"deploy: cleanup on {place.name} failed ({one_line(error)}): run `inv down --target ssh`")


def smoke(opts: dict[str, Any], *, log=print) -> None:
    """Run `python -m scripts.smoke` on the host, for the requested systems that are deployed."""
    place, record = _stack(opts)
    try:
        systems = [s for s in _settings(opts).systems if s in record.get("systems", [])] or record.get("systems", [])
        place.module("scripts.smoke", "--systems", ",".join(systems), timeout=STEP_TIMEOUT_S)
    finally:
        place.runner.close()


def bench(opts: dict[str, Any], *, log=print) -> dict[str, Any]:
    """smoke -> measure (load here or on --loadgen-host) -> metrics; exit 1 if a system failed."""
    from scripts import bench as bench_mod
    doc = run_bench(opts, log=log)
    bench_mod.check_status(doc)
    return doc


def metrics(opts: dict[str, Any], *, log=print) -> dict[str, Any]:
    """Resources were sampled during the run; this recomputes costs on the latest results, as locally."""
    from scripts import bench as bench_mod
    doc = bench_mod.metrics_phase(results.load(), log=log)
    bench_mod.check_status(doc)
    return doc


def down(opts: dict[str, Any], *, log=print) -> None:
    """Stop everything the harness started on the host (by pid, via `scripts.down` there); keeps logs."""
    record = load_record()
    spec = (opts.get("host") or "").strip() or (record or {}).get("host", "")
    if not spec:
        log("down: nothing is deployed over SSH from this machine")
        return
    from scripts import sshhost
    runner = sshhost.connect(spec)
    try:
        if record is not None and record["host"] == spec:
            work = record["workdir"]
        else:
            work = workdir(probe_host(runner))
        place = remote_place(runner, work, "stack")
        if opts.get("dry_run"):
            log(f"down (dry run): would stop what {place.path('state', 'state.json')} on {runner.name} names")
            return
        if runner.run(["test", "-x", place.python], timeout=30, check=False).code != 0:
            log(f"down: no harness on {runner.name} in {work}: nothing to stop")
        else:
            put_harness(place)
            out = place.agent("down", timeout=STEP_TIMEOUT_S)
            stopped = ", ".join(out["stopped"]) or "nothing (all had already exited)"
            log(f"down: {runner.name}: stopped {stopped}")
        if record is not None and record["host"] == spec:
            record_path().unlink(missing_ok=True)
            (paths.STATE_DIR / "ssh-stack-state.json").unlink(missing_ok=True)
    finally:
        runner.close()


def ci(opts: dict[str, Any], *, log=print) -> None:
    """deploy -> bench -> report over SSH, with down always run; exit 1 if a system failed."""
    from scripts import bench as bench_mod
    from scripts import update_readme
    doc = None
    try:
        deploy(opts, log=log)
        doc = run_bench(opts, log=log)
    finally:
        down(opts, log=log)  # before publishing, so a rendering error cannot leave the host running
    update_readme.report(doc)
    bench_mod.check_status(doc)


# --------------------------------------------------------------------------- the measured run


def _loadgen(opts: dict[str, Any], *, log=print) -> Place:
    spec = (opts.get("loadgen_host") or "").strip()
    if not spec:
        return local_place()
    runner, probe, _ = open_host(spec, flag="--loadgen-host")
    try:
        place = remote_place(runner, workdir(probe), "loadgen")
        provision(place, probe, LOADGEN_BINARIES, log=log)
    except BaseException:
        runner.close()
        raise
    return place


def ship_pki(stack: Place, load: Place, st: dict[str, Any]) -> dict[str, Any]:
    """Give the load host the stack's PKI (minus the logs' private keys) and a ct_hammer log config;
    return the state translated for it."""
    local = paths.STATE_DIR / "ssh-pki"
    if local.exists():
        import shutil
        shutil.rmtree(local)
    local.mkdir(parents=True, mode=0o700)
    fetch_tree(stack.runner, st["pki"]["dir"], local, excludes=NOT_FOR_LOADGEN, scratch=stack.path("state"))
    load_pki = load.path("pki")
    push_tree(load.runner, local, load_pki)
    log_config = load.path("state", LOG_CONFIG_NAME)
    if "trillian" in st["systems"]:
        info = st["systems"]["trillian"]
        from scripts import pki as pki_mod
        pub_der = pki_mod.public_key_der(local / posixpath.relpath(info["public_key"], st["pki"]["dir"]))
        # ct_hammer reads only the public key and prefix; the private key stays on the stack host.
        text = deploy_mod.ctfe_config(info["tree_id"], Path(load_pki) / "roots.pem",
                                      Path(load_pki) / "logs" / "trillian.key.pem", "", pub_der)
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / LOG_CONFIG_NAME).write_text(text)
            load.runner.put(Path(tmp) / LOG_CONFIG_NAME, log_config)
    return loadgen_state(st, pki_dir=load_pki, log_config=log_config, address=stack.runner.address)


def measure_over_ssh(stack: Place, load: Place, state_file: str, settings_file: str, system: str,
                     settings: config.Settings, st: dict[str, Any], run_id: str) -> dict[str, Any]:
    """One system: sampler on the stack, hammer.measure on the load host, both joined by `combine`."""
    stack.agent("sampler-start", "--system", system)
    obs = None
    try:
        budget = settings.warmup + settings.duration + hammer.WALL_SLACK_S + hammer.DRAIN_DEADLINE_S + 120
        obs = load.agent("measure", "--system", system, "--state", state_file, "--settings", settings_file,
                         "--run-dir", load.path("results", run_id), timeout=budget, stream=True)
    except BaseException:
        _quietly(lambda: load.agent("stop"))
        raise
    finally:
        stack_rec = stack.agent("sampler-stop", "--system", system)
    return combine(obs, stack_rec, settings, list(st["systems"][system]["components"]))


def _measure_repeats(stack: Place, load: Place, state_file: str, settings_file: str, system: str,
                     settings: config.Settings, st: dict[str, Any], run_id: str, *, log=print) -> dict[str, Any]:
    """--repeats measured runs of one system, combined as locally (any failed repeat fails the system)."""
    from scripts import bench as bench_mod
    runs = []
    for attempt in range(settings.repeats):
        if settings.repeats > 1:
            log(f"{system}: repeat {attempt + 1} of {settings.repeats}")
        try:
            runs.append(measure_over_ssh(stack, load, state_file, settings_file, system, settings, st, run_id))
        except RunFailed as exc:  # the measurement itself broke (not the log): this system failed
            runs.append({**results.failed_entry(f"measurement over SSH failed: {one_line(exc)}"),
                         "offered_qps": settings.qps})
        if runs[-1]["status"] != "ok":
            break
    return bench_mod.combine_repeats(runs, settings.repeats)


def _quietly(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except (HarnessError, OSError):
        pass


def run_bench(opts: dict[str, Any], *, log=print) -> dict[str, Any]:
    from scripts import bench as bench_mod
    settings = _settings(opts)
    if settings.find_max or settings.qps_levels:
        raise BadInput("--find-max/--qps-levels are not supported with --target ssh yet: run one rate per bench")
    results.check_writable()
    stack, record = _stack(opts)
    load = None
    try:
        st = _read_state(stack)
        deployed = [s for s in st.get("systems_requested", []) if s in st["systems"]]
        systems = [s for s in settings.systems if s in deployed]
        if not systems:
            raise BadInput(f"none of {', '.join(settings.systems)} is deployed on {stack.name} "
                           f"(deployed: {', '.join(deployed) or 'none'})")
        settings = config.Settings(**{**settings.__dict__, "systems": tuple(systems)})
        load = _loadgen(opts, log=log)
        lg_state = ship_pki(stack, load, st)
        state_file = load.put_json("loadgen_state.json", lg_state)
        settings_file = load.put_json("settings.json", settings_values(settings.as_dict()))
        smoke_results = stack.agent("smoke", "--systems", ",".join(systems), stream=True)
        doc = results.new_run(settings, st)
        stack_facts, load_facts = stack.agent("facts"), load.agent("facts")
        doc["machine"] = {**stack_facts, "ssh_host": stack.name,
                          "loadgen": {**load_facts, "where": "this machine (the invoking one)"
                                      if load.runner.is_local else load.name}}
        samples: dict[str, Any] = {}
        results.save(doc)
        log(f"run {doc['run_id']}: stack on {stack.name}, load from {load.name}; results in {results.run_dir(doc)}")
        try:
            for system in systems:
                sm = smoke_results.get(system)
                if sm is not None and not sm["ok"]:
                    doc["systems"][system] = results.failed_entry(sm["reason"])
                    results.save(doc)
                    continue
                doc["systems"][system] = {"status": "running", "reason": "", "qps": None}
                log(f"hammer {system}: {settings.loadgen} load at {settings.qps:g}/s from {load.name}, "
                    f"warmup {settings.warmup:g}s, window {settings.duration:g}s")
                obs = _measure_repeats(stack, load, state_file, settings_file, system, settings, st, doc["run_id"],
                                       log=log)
                bench_mod.record_system(doc, samples, system, obs, sm)
                log(f"hammer {system}: " + (f"{obs['qps']:.1f} entries/s integrated; limited by {obs['limited_by']}"
                                            if obs["status"] == "ok" else f"FAILED — {obs['reason']}"))
        except (KeyboardInterrupt, Interrupted):
            results.finish(doc, interrupted=True)
            results.save(doc, samples=samples)
            raise
        finally:
            _copy_logs(stack, load, st, doc)
        results.finish(doc)
        results.save(doc, samples=samples)
        return bench_mod.metrics_phase(doc, log=log)
    finally:
        stack.runner.close()
        if load is not None:
            load.runner.close()


def _copy_logs(stack: Place, load: Place, st: dict[str, Any], doc: dict[str, Any]) -> None:
    """Component logs from the stack and generator logs from the load host, beside the results."""
    dest = results.run_dir(doc) / "logs"
    _quietly(lambda: fetch_tree(stack.runner, st["log_dir"], dest, scratch=stack.path("state")))
    gen_logs = load.path("results", doc["run_id"], "logs")
    if load.runner.run(["test", "-d", gen_logs], timeout=30, check=False).code == 0:
        _quietly(lambda: fetch_tree(load.runner, gen_logs, dest, scratch=load.path("state")))


# --------------------------------------------------------------------------- the host side (agent)
# `python -m scripts.remote agent <command> --out FILE ...` runs on a host, in its harness copy, with
# the CTB_* dirs of its role; each command writes its JSON answer to --out.

AGENTS_FILE = "agents.json"  # long-running agents this host side started: name -> proc record


def _agents() -> dict[str, dict]:
    path = paths.STATE_DIR / AGENTS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _set_agent(name: str, rec: dict | None) -> None:
    agents = _agents()
    if rec is None:
        agents.pop(name, None)
    else:
        agents[name] = rec
    write_json(paths.STATE_DIR / AGENTS_FILE, agents)


def _sampler_out(system: str) -> Path:
    return paths.STATE_DIR / f"sampler-{system}.json"


def agent_digests(args) -> dict[str, str | None]:
    return {p: (_digest(Path(p)) if Path(p).is_file() else None) for p in args.paths}


def agent_status(args) -> dict[str, Any]:
    st = state.load(required=False)
    return {"deployed": st is not None,
            "running": [n for n, rec in (st or {}).get("components", {}).items() if proc.alive(rec)]}


def agent_facts(args) -> dict[str, Any]:
    return results.machine_facts()


def agent_smoke(args) -> dict[str, Any]:
    from scripts import bench as bench_mod  # imported late everywhere: it pulls in matplotlib
    return bench_mod.smoke_phase(config.settings(systems=args.systems))


def agent_sampler_start(args) -> dict[str, Any]:
    name = f"sampler-{args.system}"
    old = _agents().get(name)
    if old is not None:
        proc.stop(old, grace=5)
    out = _sampler_out(args.system)
    out.unlink(missing_ok=True)
    ready = out.with_suffix(".ready")
    ready.unlink(missing_ok=True)
    rec = proc.spawn(name, [sys.executable, "-m", AGENT, "agent", "sample", "--system", args.system, "--out", str(out)],
                     log_path=paths.STATE_DIR / "logs" / f"{name}.log", cwd=paths.REPO)
    _set_agent(name, rec)
    proc.wait_for(f"the {args.system} sampler to start", ready.exists, deadline_s=SAMPLER_START_S, watch=rec)
    return {"pid": rec["pid"]}


def agent_sample(args) -> dict[str, Any]:
    """Watch one system's components until SIGTERM: CPU/RSS (metrics.Sampler), deaths, stalls, accepted SCTs."""
    st = state.load()
    info = st["systems"][args.system]
    components = {n: st["components"][n] for n in info["components"]}
    stopping: list[int] = []  # a plain flag: Event.set() in a signal handler can deadlock with Event.wait()
    signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
    sampler = metrics_mod.Sampler(dict(components)).start()
    died: dict[str, float] = {}
    stalled_since: dict[str, float] = {}
    stalled: dict[str, float] = {}
    accepted: list[list[float]] = []
    next_count = 0.0

    def check() -> None:
        nonlocal stalled_since, next_count
        now = time.monotonic()
        for n, rec in components.items():
            if n not in died and not proc.alive(rec):
                died[n] = now
        stalled_since = {n: stalled_since.get(n, now) for n, rec in components.items() if proc.stalled(rec)}
        for n, since in stalled_since.items():
            if now - since >= hammer.STALL_DEADLINE_S:
                stalled.setdefault(n, now)
        if info.get("accepted_counter") and now >= next_count:
            next_count = now + 1.0
            value = ctclient.read_counter(info["accepted_counter"], timeout=0.8)
            if value is not None:
                accepted.append([round(now, 3), value])

    check()
    Path(args.out).with_suffix(".ready").touch()
    while not stopping:
        time.sleep(0.25)
        check()
    sampler.stop()
    check()
    return {"samples": sampler.export(), "died": died, "stalled": stalled, "accepted": accepted,
            "clock_offset": time.time() - time.monotonic(), "host": socket.gethostname()}


def agent_sampler_stop(args) -> dict[str, Any]:
    name = f"sampler-{args.system}"
    rec = _agents().get(name)
    if rec is None:
        raise RunFailed(f"no {args.system} sampler is running on this host")
    proc.stop(rec, grace=15)
    _set_agent(name, None)
    out = _sampler_out(args.system)
    if not out.exists():
        raise RunFailed(f"the {args.system} sampler wrote no samples; log: {proc.log_tail(rec['log'], 3)}")
    return json.loads(out.read_text())


def _raise_interrupted(_signum, _frame):
    raise Interrupted("terminated (SIGTERM)")


def agent_measure(args) -> dict[str, Any]:
    """hammer.measure against the stack's endpoints, from this host (the load generator's)."""
    import psutil
    import requests
    st = json.loads(Path(args.state).read_text())
    settings = config.settings(json.loads(Path(args.settings).read_text()))
    signal.signal(signal.SIGTERM, _raise_interrupted)  # measure's `finally` stops the generator
    me = psutil.Process()
    _set_agent("measure", {"name": "measure", "pid": me.pid, "create_time": me.create_time()})
    try:
        obs = hammer.measure(st, args.system, settings, Path(args.run_dir), progress=True, log=print)
    except requests.RequestException as exc:
        obs = {"system": args.system, "offered_qps": settings.qps, "duration_s": settings.duration,
               "warmup_s": settings.warmup, "tree": [], "samples": {},
               "error": f"the load generator host cannot read {args.system}'s tree head: {one_line(exc)[:200]}"}
    finally:
        _set_agent("measure", None)
    obs["clock_offset"] = time.time() - time.monotonic()
    return obs


def agent_interrupt(args) -> dict[str, Any]:
    """SIGINT to a step started with a pidfile (if it still runs that module), so it cleans up after itself."""
    import psutil
    try:
        pid = int(Path(args.pidfile).read_text().strip())
        target = psutil.Process(pid)
        if args.expect not in " ".join(target.cmdline()):
            return {"interrupted": False}
        target.send_signal(signal.SIGINT)
    except (OSError, ValueError, psutil.Error):
        return {"interrupted": False}
    try:
        target.wait(timeout=INTERRUPT_GRACE_S)
    except psutil.TimeoutExpired:
        proc.stop({"name": args.expect, "pid": pid, "create_time": target.create_time()}, grace=5)
    return {"interrupted": True}


def agent_stop(args) -> dict[str, Any]:
    """Stop every agent this host side started (samplers, a running measurement), by pid."""
    stopped = []
    for name, rec in _agents().items():
        if proc.stop(rec, grace=15):
            stopped.append(name)
        _set_agent(name, None)
    return {"stopped": stopped}


def agent_down(args) -> dict[str, Any]:
    from scripts import down as down_mod
    agents = agent_stop(args)["stopped"]
    out = down_mod.down(log=lambda _line: None)
    return {"stopped": out["stopped"], "agents": agents}


AGENT_COMMANDS: dict[str, Callable[[argparse.Namespace], Any]] = {
    "digests": agent_digests, "status": agent_status, "facts": agent_facts, "smoke": agent_smoke,
    "sampler-start": agent_sampler_start, "sample": agent_sample, "sampler-stop": agent_sampler_stop,
    "measure": agent_measure, "interrupt": agent_interrupt, "stop": agent_stop, "down": agent_down,
}

CONTROLLER_STEPS = {"bootstrap": bootstrap, "deploy": deploy, "smoke": smoke, "bench": bench, "metrics": metrics,
                    "down": down, "ci": ci}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scripts.remote", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, fn in CONTROLLER_STEPS.items():
        s = sub.add_parser(name, help=(fn.__doc__ or "").splitlines()[0])
        s.add_argument("--host", default=None, help="user@host (or an ssh-config alias) that runs the stack")
        s.add_argument("--loadgen-host", dest="loadgen_host", default=None,
                       help="user@host that runs the load generator (default: this machine)")
        s.add_argument("--install-mariadb", dest="install_mariadb", action="store_true",
                       help="apt-get install mariadb-server on the host if it is missing (needs root or sudo)")
        s.add_argument("--dry-run", dest="dry_run", action="store_true", help="check the host, change nothing")
        for flag in ("systems", "tier", "qps", "duration", "warmup", "loadgen", "max_in_flight", "repeats"):
            s.add_argument(f"--{flag.replace('_', '-')}", dest=flag, default=None,
                           help=f"default {config.DEFAULTS[flag]}")
    a = sub.add_parser("agent", help="host side (run by the controller over SSH)")
    a.add_argument("agent_command", choices=sorted(AGENT_COMMANDS))
    a.add_argument("--out", required=True, help="where the command writes its JSON answer")
    a.add_argument("--system", choices=config.SYSTEMS)
    a.add_argument("--systems", default=None)
    a.add_argument("--state", help="measure: the state file translated for this host")
    a.add_argument("--settings", help="measure: the run settings (JSON)")
    a.add_argument("--run-dir", dest="run_dir", help="measure: where generator logs go")
    a.add_argument("--pidfile", help="interrupt: the step's pid file")
    a.add_argument("--expect", help="interrupt: the module the pid must be running")
    a.add_argument("--paths", nargs="+", default=[], help="digests: files to hash")
    return p


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command != "agent":
        opts = {k: v for k, v in vars(args).items() if k != "command" and v is not None}
        opts = {**_settings({**opts, "target": "ssh"}).as_dict(), **opts, "target": "ssh"}
        CONTROLLER_STEPS[args.command](opts)
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    answer = AGENT_COMMANDS[args.agent_command](args)
    write_json(out, answer)
    return 0


if __name__ == "__main__":
    main()
