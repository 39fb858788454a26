"""Deploy the local target: MariaDB + Trillian + CTFE, and TesseraCT (POSIX) + a read-only tile server.

Every component is a child process in its own process group, listening on a free 127.0.0.1 port, with
its log under the state dir; readiness is polled with deadlines. The state file records pids, ports,
endpoints, key paths, upstream versions and each component's exact flags, so every later step can run
alone. If anything fails (or an interrupt arrives) everything started so far is stopped again.
"""
from __future__ import annotations

import argparse
import datetime as dt
import getpass
import os
import re
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import requests

from scripts import bootstrap, config, paths, pki, proc, state
from scripts.errors import BadInput, RunFailed, cli_entry

PREFIX = "bench"                     # CTFE prefix and TesseraCT path prefix
DB_NAME, DB_USER = "trillian", "ctbench"
START_DEADLINE_S = 60
# Where the write/read endpoints (CTFE, TesseraCT, tile server) listen; the SSH target sets the host's
# own address so a load generator elsewhere can reach them. Everything else stays on loopback.
BIND_ADDRESS = os.environ.get("CTB_BIND_ADDRESS") or "127.0.0.1"

# Knobs that decide throughput; recorded with every result (upstream.md).
SIGNER_FLAGS = {"sequencer_interval": "100ms", "batch_size": "1000", "num_sequencers": "10"}
# Trillian's MySQL pool is unbounded by default: under load the log server opened connections until
# MariaDB refused them ("Error 1040: Too many connections" -> CTFE HTTP 500). Bound the pools (queries
# queue in the pool instead) and give MariaDB room for both.
MYSQL_POOL_FLAGS = {"mysql_max_conns": "100", "mysql_max_idle_conns": "20"}
MARIADB_MAX_CONNECTIONS = "1000"
TESSERACT_FLAGS = {"checkpoint_interval": "1500ms", "batch_max_size": "256", "batch_max_age": "250ms",
                   "pushback_max_outstanding": "4096", "enable_publication_awaiter": "true",
                   "rate_limit_old_not_before": "", "inmemory_antispam_cache_size": "256k"}
OTEL_OFF = {"OTEL_METRICS_EXPORTER": "none", "OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
UPSTREAM_MODULES = {"trillian": "github.com/google/trillian", "ctgo": "github.com/google/certificate-transparency-go",
                    "tesseract": "github.com/transparency-dev/tesseract"}


def upstream_versions() -> dict[str, str]:
    out = {}
    for mod, path in UPSTREAM_MODULES.items():
        text = (paths.TOOLS_DIR / mod / "go.mod").read_text()
        match = re.search(rf"^\s*(?:require\s+)?{re.escape(path)}\s+(v\S+)", text, re.M)
        out[path] = match.group(1) if match else "unknown"
    return out


def module_dir(tools_module: str, module_path: str) -> Path:
    out = proc.run(["go", "-C", str(paths.TOOLS_DIR / tools_module), "list", "-m", "-f", "{{.Dir}}", module_path],
                   timeout=120).stdout.strip()
    if not out or not Path(out).is_dir():
        raise RunFailed(f"module {module_path} is not in the Go module cache: run `inv bootstrap`")
    return Path(out)


def _bin(name: str) -> str:
    path = paths.BIN_DIR / name
    if not path.exists():
        raise BadInput(f"{name} is not built ({path} missing): run `inv bootstrap` first")
    return str(path)


def _flags(values: dict[str, str]) -> list[str]:
    return [f"--{k}={v}" for k, v in values.items()]


def textproto_bytes(data: bytes) -> str:
    """Escape bytes for a protobuf text-format string literal (octal escapes for everything)."""
    return "".join(f"\\{b:03o}" for b in data)


def textproto_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def ctfe_config(tree_id: int, roots: Path, key: Path, password: str, pub_der: bytes) -> str:
    """A LogConfigSet text proto for ct_server (and ct_hammer, which reads the same file)."""
    return (
        "config {\n"
        f"  log_id: {tree_id}\n"
        f'  prefix: "{PREFIX}"\n'
        f'  roots_pem_file: "{textproto_string(str(roots))}"\n'
        "  private_key {\n"
        "    [type.googleapis.com/keyspb.PEMKeyFile] {\n"
        f'      path: "{textproto_string(str(key))}"\n'
        f'      password: "{textproto_string(password)}"\n'
        "    }\n"
        "  }\n"
        f'  public_key {{ der: "{textproto_bytes(pub_der)}" }}\n'
        "  max_merge_delay_sec: 86400\n"
        "  expected_merge_delay_sec: 120\n"
        "}\n"
    )


def _http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException as exc:
        raise RunFailed(str(exc)) from None


class Deployment:
    """Brings components up one by one, recording each in `self.state` as soon as it starts."""

    def __init__(self, settings: config.Settings, *, log=print):
        self.settings = settings
        self.log = log
        self.run_dir = paths.STATE_DIR / "run"
        self.log_dir = paths.STATE_DIR / "logs"
        self.pki = pki.layout()
        self.children_before = proc.spawned()
        self.state: dict[str, Any] = {
            "target": "local",
            "deployed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "deployer_pid": os.getpid(),
            "versions": upstream_versions(),
            "pki": {"dir": str(self.pki.dir), "roots": str(self.pki.roots)},
            "components": {},
            "systems": {},
            "log_dir": str(self.log_dir),
        }

    # -- bookkeeping
    def _spawn(self, name: str, system: str, cmd: list[str], *, flags: dict | None = None,
               env: dict | None = None, secrets_: tuple[str, ...] = (), ports: dict | None = None) -> dict:
        rec = proc.spawn(name, cmd, log_path=self.log_dir / f"{name}.log", env=env, secrets=secrets_)
        rec.update({"system": system, "flags": flags or {}, "ports": ports or {},
                    "seq": len(self.state["components"])})
        self.state["components"][name] = rec
        state.save(self.state)
        return rec

    def stop_all(self) -> list[str]:
        left = []
        for name, rec in state.stop_order(self.state):
            proc.stop(rec)
            if proc.alive(rec):
                left.append(name)
        # A component an interrupt caught between its start and its entry in the state file.
        proc.stop_strays(self.children_before, [rec["pid"] for rec in self.state["components"].values()])
        return left

    # -- MariaDB
    def mariadb(self) -> dict:
        progs = bootstrap.ensure_mariadb(log=self.log)
        base = self.run_dir / "mariadb"
        datadir, sock = base / "data", base / "mysqld.sock"
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True, mode=0o700)
        user = getpass.getuser()
        proc.run([progs["install_db"], "--no-defaults", f"--datadir={datadir}", f"--user={user}",
                  "--auth-root-authentication-method=normal", "--skip-test-db"], timeout=180)
        port = proc.free_port()
        flags = {"datadir": str(datadir), "user": user, "port": str(port), "bind-address": "127.0.0.1",
                 "socket": str(sock), "pid-file": str(base / "mysqld.pid"), "skip-name-resolve": "1",
                 "max-connections": MARIADB_MAX_CONNECTIONS}
        rec = self._spawn("mariadb", "trillian", [progs["server"], "--no-defaults", *_flags(flags)],
                          flags=flags, ports={"sql": port})
        client = [progs["client"], "--no-defaults", "--protocol=socket", f"--socket={sock}", "-uroot"]
        proc.wait_for("MariaDB to accept connections",
                      lambda: proc.run([*client, "-e", "SELECT 1"], timeout=10, check=False).returncode == 0,
                      deadline_s=START_DEADLINE_S, watch=rec)
        password = secrets.token_urlsafe(24)
        setup_sql = (f"CREATE DATABASE {DB_NAME};\n"
                     f"CREATE USER '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{password}';\n"
                     f"GRANT ALL PRIVILEGES ON {DB_NAME}.* TO '{DB_USER}'@'127.0.0.1';\nFLUSH PRIVILEGES;\n")
        proc.run(client, input=setup_sql, timeout=60, secrets=[password])
        # A host without Go (SSH target) is given the schema file instead of the module cache.
        schema = Path(os.environ.get("CTB_TRILLIAN_SCHEMA") or
                      module_dir("trillian", UPSTREAM_MODULES["trillian"]) / "storage/mysql/schema/storage.sql")
        proc.run([*client, "-D", DB_NAME], input=schema.read_text(), timeout=120)
        # Only the logs' own account may log in from here on: mariadb-install-db leaves root without a
        # password on 127.0.0.1, ::1 and the host name (reachable by any local user over TCP). Drop those
        # and lock root@localhost, which nothing uses after this setup.
        others = proc.run([*client, "-N", "-B", "-e", "SELECT CONCAT(QUOTE(User), '@', QUOTE(Host)) FROM mysql.user "
                           "WHERE User = 'root' AND Host <> 'localhost'"], timeout=30).stdout.split()
        proc.run(client, input="".join(f"DROP USER {u};\n" for u in others)
                 + "ALTER USER 'root'@'localhost' ACCOUNT LOCK;\n", timeout=30)
        db = {"host": "127.0.0.1", "port": port, "socket": str(sock), "user": DB_USER, "password": password,
              "database": DB_NAME, "schema": str(schema)}
        self.state["mariadb"] = db
        state.save(self.state)
        return db

    # -- Trillian + CTFE
    def trillian(self) -> None:
        db = self.mariadb()
        uri = f"{db['user']}:{db['password']}@tcp(127.0.0.1:{db['port']})/{db['database']}"
        # The password goes to the log server and signer in a 0600 flag file (trillian's --config), not on
        # their command lines, which every local user can read in /proc.
        flag_file = self.run_dir / "trillian" / "mysql.flags"
        flag_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(flag_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"--mysql_uri='{uri}'\n")
        common = {"storage_system": "mysql", "quota_system": "mysql", "config": str(flag_file), **MYSQL_POOL_FLAGS}
        shown = {"mysql_uri": uri}  # recorded (masked) with the flags, for provenance
        ports = {name: proc.free_port() for name in ("server_rpc", "server_http", "signer_rpc", "signer_http",
                                                    "ctfe_http", "ctfe_metrics")}
        server_flags = {**common, "rpc_endpoint": f"127.0.0.1:{ports['server_rpc']}",
                        "http_endpoint": f"127.0.0.1:{ports['server_http']}"}
        server = self._spawn("trillian_log_server", "trillian", [_bin("trillian_log_server"), *_flags(server_flags)],
                             flags=_hide({**server_flags, **shown}, db["password"]), secrets_=(db["password"],),
                             ports={"rpc": ports["server_rpc"], "http": ports["server_http"]})
        signer_flags = {**common, "rpc_endpoint": f"127.0.0.1:{ports['signer_rpc']}",
                        "http_endpoint": f"127.0.0.1:{ports['signer_http']}", "force_master": "true",
                        **SIGNER_FLAGS}
        signer = self._spawn("trillian_log_signer", "trillian", [_bin("trillian_log_signer"), *_flags(signer_flags)],
                             flags=_hide({**signer_flags, **shown}, db["password"]), secrets_=(db["password"],),
                             ports={"rpc": ports["signer_rpc"], "http": ports["signer_http"]})
        proc.wait_for("trillian_log_server RPC port", lambda: proc.port_open(ports["server_rpc"]),
                      deadline_s=START_DEADLINE_S, watch=server)
        proc.wait_for("trillian_log_signer health", lambda: _http_ok(f"http://127.0.0.1:{ports['signer_http']}/healthz"),
                      deadline_s=START_DEADLINE_S, watch=signer)

        def create_tree() -> int:
            out = proc.run([_bin("createtree"), f"--admin_server=127.0.0.1:{ports['server_rpc']}",
                            "--display_name=ctbench"], timeout=30).stdout.strip()
            return int(out.split()[-1])

        tree_id = proc.wait_for("createtree", create_tree, deadline_s=START_DEADLINE_S, interval=1, watch=server)
        password = self.pki.trillian_key_password.read_text().strip()
        pub_der = pki.public_key_der(self.pki.trillian_pub)
        cfg_path = self.run_dir / "ctfe" / "log_config.textproto"
        cfg_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(cfg_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(ctfe_config(tree_id, self.pki.roots, self.pki.trillian_key, password, pub_der))
        ctfe_flags = {"log_config": str(cfg_path), "log_rpc_server": f"127.0.0.1:{ports['server_rpc']}",
                      "http_endpoint": f"{BIND_ADDRESS}:{ports['ctfe_http']}",
                      "metrics_endpoint": f"127.0.0.1:{ports['ctfe_metrics']}"}
        ctfe = self._spawn("ct_server", "trillian", [_bin("ct_server"), *_flags(ctfe_flags)], flags=ctfe_flags,
                           ports={"http": ports["ctfe_http"], "metrics": ports["ctfe_metrics"]})
        base = f"http://{BIND_ADDRESS}:{ports['ctfe_http']}/{PREFIX}"
        proc.wait_for("CTFE get-sth", lambda: _http_ok(f"{base}/ct/v1/get-sth"), deadline_s=START_DEADLINE_S,
                      watch=ctfe)
        self.state["systems"]["trillian"] = {
            "api": "rfc6962", "base_url": base, "add_chain_url": f"{base}/ct/v1/add-chain",
            "sth_url": f"{base}/ct/v1/get-sth", "tree_id": tree_id, "prefix": PREFIX,
            "public_key": str(self.pki.trillian_pub), "log_config": str(cfg_path),
            "ctfe_host": f"{BIND_ADDRESS}:{ports['ctfe_http']}",
            "signer_metrics": f"http://127.0.0.1:{ports['signer_http']}/metrics",
            "accepted_counter": {"url": f"http://127.0.0.1:{ports['ctfe_metrics']}/metrics", "metric": "http_rsps",
                                 "labels": {"ep": "AddChain", "rc": "200"}},
            "components": ["mariadb", "trillian_log_server", "trillian_log_signer", "ct_server"],
            "knobs": {"signer": dict(SIGNER_FLAGS), "mysql_pool": dict(MYSQL_POOL_FLAGS),
                      "mariadb_max_connections": MARIADB_MAX_CONNECTIONS, "quota_system": "mysql (max_unsequenced_rows default 500000)"},
        }
        state.save(self.state)

    # -- TesseraCT
    def tesseract(self) -> None:
        storage = self.run_dir / "tesseract" / "storage"
        shutil.rmtree(storage.parent, ignore_errors=True)
        storage.mkdir(parents=True, mode=0o700)
        port, static_port = proc.free_port(), proc.free_port()
        origin = f"127.0.0.1/{PREFIX}"
        flags = {"storage_dir": str(storage), "origin": origin, "path_prefix": f"/{PREFIX}",
                 "roots_pem_file": str(self.pki.roots), "private_key": str(self.pki.tesseract_key),
                 "http_endpoint": f"{BIND_ADDRESS}:{port}", **TESSERACT_FLAGS}
        server = self._spawn("tesseract", "tesseract", [_bin("posix"), *_flags(flags)], flags=flags,
                             env=OTEL_OFF, ports={"http": port})
        static_flags = {"bind": BIND_ADDRESS, "directory": str(storage), "port": str(static_port)}
        static = self._spawn("tesseract_static", "tesseract",
                             [sys.executable, "-m", "http.server", "--bind", BIND_ADDRESS, "--directory", str(storage),
                              str(static_port)], flags=static_flags, ports={"http": static_port})
        base = f"http://{BIND_ADDRESS}:{port}/{PREFIX}"
        proc.wait_for("TesseraCT get-roots", lambda: _http_ok(f"{base}/ct/v1/get-roots"),
                      deadline_s=START_DEADLINE_S, watch=server)
        read_url = f"http://{BIND_ADDRESS}:{static_port}"
        proc.wait_for("TesseraCT checkpoint served", lambda: (storage / "checkpoint").exists() and _http_ok(f"{read_url}/checkpoint"),
                      deadline_s=START_DEADLINE_S, watch=static)
        self.state["systems"]["tesseract"] = {
            "api": "static-ct", "base_url": base, "add_chain_url": f"{base}/ct/v1/add-chain",
            "read_url": read_url, "checkpoint_url": f"{read_url}/checkpoint", "origin": origin, "prefix": PREFIX,
            "public_key": str(self.pki.tesseract_pub), "storage_dir": str(storage),
            "components": ["tesseract", "tesseract_static"],
            "knobs": {"tesseract": dict(TESSERACT_FLAGS)},
        }
        state.save(self.state)


def _hide(flags: dict[str, str], secret: str) -> dict[str, str]:
    return {k: v.replace(secret, proc.MASK) for k, v in flags.items()}


def check_not_deployed() -> None:
    """Refuse a second deployment; clean up a stale state file left by a crash."""
    old = state.load(required=False) if state.exists() else None
    if old is None:
        return
    running = [n for n, rec in old["components"].items() if proc.alive(rec)]
    if running:
        raise BadInput(f"a deployment is already up (since {old.get('deployed_at', '?')}; running: "
                       f"{', '.join(running)}): run `inv down` first")
    state.remove()


def _private_dir(path: Path) -> None:
    """The state dir holds the DB password, keys and the database: owner only. An existing dir is
    tightened only if it is ours and not a shared sticky dir such as /tmp."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.stat()
    if info.st_uid == os.getuid() and not info.st_mode & 0o1000:
        os.chmod(path, 0o700)


def deploy(settings: config.Settings, *, log=print) -> dict:
    if settings.target != "local":
        raise BadInput(f"deploy: target {settings.target!r} is handled by its own module")
    check_not_deployed()
    _private_dir(paths.STATE_DIR)
    the_pki, fresh = pki.ensure()
    started = time.monotonic()
    dep = Deployment(settings, log=log)
    dep.state["systems_requested"] = list(settings.systems)
    try:
        for system in settings.systems:
            log(f"deploy: starting {system} ...")
            getattr(dep, system)()
    except BaseException as exc:
        with proc.signals_deferred():
            left = dep.stop_all()
            if left:
                dep.state["cleanup_failed"] = left
                state.save(dep.state)
            else:
                state.remove()
        if isinstance(exc, (KeyboardInterrupt,)):
            raise
        if isinstance(exc, RunFailed | BadInput):
            raise type(exc)(f"deploy failed, everything stopped again: {exc}") from None
        raise
    dep.state["deploy_seconds"] = round(time.monotonic() - started, 1)
    state.save(dep.state)
    return dep.state


def describe(st: dict) -> list[str]:
    lines = []
    for system, info in st["systems"].items():
        lines.append(f"{system}: add-chain {info['add_chain_url']}")
    for name, rec in st["components"].items():
        lines.append(f"  {name}: pid {rec['pid']} ports {rec.get('ports', {})} log {rec['log']}")
    return lines


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.deploy", description=__doc__.splitlines()[0])
    parser.add_argument("--systems", default=config.DEFAULTS["systems"], help="comma-separated: trillian,tesseract")
    parser.add_argument("--target", default="local", help="local (gke/ssh: use inv)")
    args = parser.parse_args(argv)
    st = deploy(config.settings(systems=args.systems, target=args.target))
    print("\n".join(describe(st)))
    print(f"deployed in {st['deploy_seconds']}s; state {state.state_file()}")
    return 0


if __name__ == "__main__":
    main()
