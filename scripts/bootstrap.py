"""Bootstrap: pinned upstream binaries, a MariaDB server binary, and the test PKI. Idempotent.

The pins live in tools/<module>/go.mod (`tool` directives, one module per upstream so each keeps its
own dependency graph). A module is rebuilt only when its stamp — sha256 of go.mod, go.sum and the Go
version — changes or one of its binaries is missing.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import shutil
import time
from pathlib import Path

from scripts import paths, pki, proc, state
from scripts.errors import BadInput, RunFailed, cli_entry

# module dir under tools/ -> binaries its `tool` directives produce
MODULES: dict[str, tuple[str, ...]] = {
    "trillian": ("trillian_log_server", "trillian_log_signer", "createtree"),
    "ctgo": ("ct_server", "ct_hammer"),
    "tesseract": ("posix", "hammer"),
}
BUILD_TIMEOUT_S = 45 * 60
MARIADB_SERVER = ("mariadbd", "mysqld")
MARIADB_INSTALL_DB = ("mariadb-install-db", "mysql_install_db")
MARIADB_CLIENT = ("mariadb", "mysql")
_SBIN = ("/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin")


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def required_go() -> str:
    """The newest `go` directive among the tool modules: the minimum Go that builds them all."""
    best = "1.0"
    for mod in MODULES:
        match = re.search(r"^go\s+(\S+)", (paths.TOOLS_DIR / mod / "go.mod").read_text(), re.M)
        if match and _version_tuple(match.group(1)) > _version_tuple(best):
            best = match.group(1)
    return best


def go_version() -> str:
    go = shutil.which("go")
    if not go:
        raise BadInput(f"Go is not installed: Go {required_go()} or newer is needed (https://go.dev/dl/)")
    out = proc.run([go, "env", "GOVERSION"], timeout=60).stdout.strip()  # e.g. go1.26.8
    return out.removeprefix("go")


def check_go() -> str:
    have, need = go_version(), required_go()
    if _version_tuple(have) < _version_tuple(need):
        raise BadInput(f"Go {have} is too old: Go {need} or newer is needed to build the pinned tools")
    return have


def stamp(module: str, go: str) -> str:
    digest = hashlib.sha256(go.encode())
    for name in ("go.mod", "go.sum"):
        digest.update((paths.TOOLS_DIR / module / name).read_bytes())
    return digest.hexdigest()


def _stamp_file(module: str) -> Path:
    return paths.BIN_DIR / f".stamp-{module}"


def build_tools(go: str, *, log=print) -> dict[str, str]:
    """Build each module whose stamp changed; returns {module: 'built'|'up to date'}."""
    paths.BIN_DIR.mkdir(parents=True, exist_ok=True)
    outcome: dict[str, str] = {}
    for module, binaries in MODULES.items():
        want = stamp(module, go)
        stamp_path = _stamp_file(module)
        have = stamp_path.read_text().strip() if stamp_path.exists() else ""
        if have == want and all((paths.BIN_DIR / b).exists() for b in binaries):
            outcome[module] = "up to date"
            continue
        log(f"building {module} tools ({', '.join(binaries)}) ...")
        started = time.monotonic()
        stamp_path.unlink(missing_ok=True)
        proc.run(["go", "-C", str(paths.TOOLS_DIR / module), "build", "-o", str(paths.BIN_DIR) + "/", "tool"],
                 timeout=BUILD_TIMEOUT_S)
        missing = [b for b in binaries if not (paths.BIN_DIR / b).exists()]
        if missing:
            raise RunFailed(f"go build of tools/{module} did not produce {', '.join(missing)}")
        stamp_path.write_text(want + "\n")
        outcome[module] = f"built in {time.monotonic() - started:.0f}s"
    return outcome


def find_program(names: tuple[str, ...]) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
        for directory in _SBIN:
            candidate = Path(directory) / name
            if candidate.exists() and os.access(candidate, os.X_OK):
                return str(candidate)
    return None


def mariadb_programs() -> dict[str, str] | None:
    found = {"server": find_program(MARIADB_SERVER), "install_db": find_program(MARIADB_INSTALL_DB),
             "client": find_program(MARIADB_CLIENT)}
    return found if all(found.values()) else None  # type: ignore[return-value]


def ensure_mariadb(*, log=print) -> dict[str, str]:
    found = mariadb_programs()
    if found:
        return found
    if platform.system() != "Linux" or not shutil.which("apt-get"):
        raise BadInput("MariaDB/MySQL server not found: install mariadb-server (mariadbd, mariadb-install-db, "
                       "mariadb client) with your package manager")
    if os.geteuid() != 0:
        raise BadInput("MariaDB server not found: run `sudo apt-get install -y mariadb-server` (needs root)")
    log("installing mariadb-server with apt-get ...")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    proc.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "mariadb-server", "mariadb-client"],
             timeout=900, env=env)
    found = mariadb_programs()
    if not found:
        raise RunFailed("apt-get installed mariadb-server but mariadbd/mariadb-install-db are still missing")
    return found


def bootstrap(*, log=print) -> dict:
    started = time.monotonic()
    go = check_go()
    built = build_tools(go, log=log)
    mariadb = ensure_mariadb(log=log)
    deployed = state.exists()
    if deployed:
        # Never swap keys under a running deployment: the logs would stop verifying.
        the_pki, regenerated = pki.layout(), False
        if not pki.complete(the_pki):
            raise RunFailed("a deployment is up but its PKI is incomplete: run `inv down` first")
    else:
        the_pki, regenerated = pki.ensure()
    summary = {"go": go, "tools": built, "mariadb": mariadb["server"], "pki": str(the_pki.dir),
               "pki_regenerated": regenerated, "seconds": round(time.monotonic() - started, 1)}
    return summary


@cli_entry
def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m scripts.bootstrap", description=__doc__.splitlines()[0]).parse_args(argv)
    summary = bootstrap()
    for module, what in summary["tools"].items():
        print(f"tools/{module}: {what}")
    print(f"go {summary['go']}; mariadb {summary['mariadb']}; pki {summary['pki']}"
          f" ({'new' if summary['pki_regenerated'] else 'kept'}); {summary['seconds']}s")
    return 0


if __name__ == "__main__":
    main()
