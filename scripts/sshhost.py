"""Where the SSH target runs commands: this machine (invoke's Context) or a remote host (Fabric's Connection).

Both runners expose the same small surface — run an argv (with env and cwd), put/get a file, read a
text file — so the steps in scripts/remote.py are written once and differ only in which runner they get.

Connecting is strict and fails in one line before anything runs on the host:
* keys come from the user's ssh config (`IdentityFile`) and agent, like `ssh` itself; `$CTB_SSH_CONFIG`
  names an ssh config file to use instead of ~/.ssh/config (the tests use their own);
* host keys must already be in known_hosts (`UserKnownHostsFile`/`GlobalKnownHostsFile` from the ssh
  config, else ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts); `StrictHostKeyChecking no` in the ssh
  config is the only opt-out. Fabric's own default (auto-accept) is replaced.
"""
from __future__ import annotations

import logging
import os
import shlex
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import fabric
import invoke
import paramiko
from invoke.exceptions import CommandTimedOut

from scripts.errors import BadInput, HarnessError, Interrupted, RunFailed, one_line

log = logging.getLogger("ctbench.ssh")
CONNECT_TIMEOUT_S = 10
DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
DEFAULT_GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def command_line(argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None) -> str:
    """One shell line for an argv: `cd CWD && exec env K=V ... ARGV` (all quoted)."""
    line = shlex.join([str(a) for a in argv])
    if env:
        line = "exec env " + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items()) + " " + line
    if cwd:
        line = f"cd {shlex.quote(cwd)} && {line}"
    return line


def error_line(stderr: str) -> str:
    """The step's own one-line error (`error: ...`, as scripts.errors.cli_entry prints it), else the tail."""
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("error: "):
            return ln.removeprefix("error: ")
    return " | ".join(lines[-3:])


def raise_for(result: Result, what: str, where: str) -> Result:
    """Map a step's exit code to the harness's errors (2 bad input, 130 interrupted, else failed)."""
    if result.code == 0:
        return result
    message = f"{where}: {what}: {error_line(result.stderr) or f'exit {result.code}'}"
    if result.code == 2:
        raise BadInput(message)
    if result.code == 130:
        raise Interrupted(message)
    raise RunFailed(message)


class _Prefixed:
    """A text stream that prefixes each line written to stdout with `[host] `."""

    def __init__(self, prefix: str):
        self.prefix, self.pending = prefix, ""

    def write(self, text: str) -> None:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            sys.stdout.write(f"{self.prefix}{line}\n")
        sys.stdout.flush()

    def flush(self) -> None:
        sys.stdout.flush()


class Runner:
    """What remote.py needs from a host. `name` is shown in messages and as the output prefix."""

    name: str
    address: str  # how the other hosts and this machine reach it
    is_local = False

    def _run(self, line: str, *, timeout: float, stream: bool): raise NotImplementedError

    def run(self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None,
            cwd: str | None = None, stream: bool = False, check: bool = True, what: str = "",
            pidfile: str | None = None) -> Result:
        """Run argv to completion; `pidfile` receives its pid (the shell `exec`s it) so it can be interrupted."""
        line = command_line(argv, env=env, cwd=cwd)
        if pidfile:
            line = f"echo $$ > {shlex.quote(pidfile)} && {line}"
        log.info("%s: run: %s", self.name, line)
        try:
            res = self._run(line, timeout=timeout, stream=stream)
        except CommandTimedOut:
            raise RunFailed(f"{self.name}: timed out after {timeout:g}s: {what or shlex.join(argv[:3])}") from None
        result = Result(res.exited if res.exited is not None else -1, res.stdout or "", res.stderr or "")
        return raise_for(result, what or Path(str(argv[0])).name, self.name) if check else result

    def put(self, local: Path, remote: str) -> None: raise NotImplementedError
    def get(self, remote: str, local: Path) -> None: raise NotImplementedError
    def read_text(self, remote: str) -> str: raise NotImplementedError
    def close(self) -> None: pass


class LocalRunner(Runner):
    """This machine, through invoke's Context."""

    is_local = True

    def __init__(self):
        self.name, self.address = "local", "127.0.0.1"
        self.context = invoke.Context()

    def _run(self, line: str, *, timeout: float, stream: bool):
        return self.context.run(line, hide="stderr" if stream else True, warn=True, timeout=timeout,
                                in_stream=False, out_stream=_Prefixed(f"[{self.name}] ") if stream else None)

    def put(self, local: Path, remote: str) -> None:
        Path(remote).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, remote)

    def get(self, remote: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(remote, local)

    def read_text(self, remote: str) -> str:
        return Path(remote).read_text()


class SshRunner(Runner):
    """A remote host, through an open Fabric Connection."""

    def __init__(self, spec: str, conn: fabric.Connection):
        self.spec, self.conn = spec, conn
        self.name = spec
        self.address = conn.host

    def _run(self, line: str, *, timeout: float, stream: bool):
        try:
            return self.conn.run(line, hide="stderr" if stream else True, warn=True, timeout=timeout,
                                 in_stream=False, out_stream=_Prefixed(f"[{self.name}] ") if stream else None)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise RunFailed(f"{self.name}: SSH connection lost: {one_line(exc)}") from None

    def put(self, local: Path, remote: str) -> None:
        try:
            self.conn.put(str(local), remote)
        except (paramiko.SSHException, OSError) as exc:
            raise RunFailed(f"{self.name}: upload of {local.name} to {remote} failed: {one_line(exc)}") from None

    def get(self, remote: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn.get(remote, str(local))
        except (paramiko.SSHException, OSError) as exc:
            raise RunFailed(f"{self.name}: download of {remote} failed: {one_line(exc)}") from None

    def read_text(self, remote: str) -> str:
        try:
            with self.conn.sftp().open(remote, "r") as fh:
                return fh.read().decode()
        except (paramiko.SSHException, OSError) as exc:
            raise RunFailed(f"{self.name}: cannot read {remote}: {one_line(exc)}") from None

    def close(self) -> None:
        self.conn.close()


# --------------------------------------------------------------------------- connecting


class _UnknownHostKey(paramiko.MissingHostKeyPolicy):
    """Refuse a host whose key is not in known_hosts, naming the key so the user can check it."""

    def missing_host_key(self, client, hostname, key):
        raise BadInput(f"unknown host key for {hostname} ({key.get_name()} "
                       f"{key.fingerprint if hasattr(key, 'fingerprint') else key.get_base64()[:24]}): "
                       "verify it and add it to known_hosts (e.g. `ssh` to the host once); nothing was changed")


def known_hosts_files(ssh_config: Mapping[str, object]) -> list[Path]:
    """known_hosts files named by the ssh config (space-separated lists), else OpenSSH's defaults."""
    files: list[str] = []
    for key, default in (("userknownhostsfile", DEFAULT_KNOWN_HOSTS),
                         ("globalknownhostsfile", DEFAULT_GLOBAL_KNOWN_HOSTS)):
        value = ssh_config.get(key)
        files.extend(str(value).split() if value else default)
    return [Path(os.path.expanduser(f)) for f in files]


def host_key_checking(ssh_config: Mapping[str, object]) -> bool:
    return str(ssh_config.get("stricthostkeychecking", "yes")).lower() not in ("no", "off")


def fabric_config() -> fabric.Config:
    path = os.environ.get("CTB_SSH_CONFIG")
    if path and not Path(path).is_file():
        raise BadInput(f"CTB_SSH_CONFIG={path}: no such file")
    config = fabric.Config(runtime_ssh_path=path or None)
    config.timeouts.connect = CONNECT_TIMEOUT_S
    return config


def connect(spec: str, *, flag: str = "--host") -> SshRunner:
    """Open an SSH connection to `user@host[:port]` (or an ssh-config alias); BadInput if impossible."""
    if not spec or not spec.strip():
        raise BadInput(f"{flag} is required for --target ssh (user@host, or a Host alias from your ssh config)")
    try:
        conn = fabric.Connection(spec.strip(), config=fabric_config())
    except ValueError as exc:
        raise BadInput(f"{flag} {spec!r}: {one_line(exc)}") from None
    where = f"{conn.user}@{conn.host}:{conn.port}"
    client = conn.client
    for path in known_hosts_files(conn.ssh_config):
        if path.is_file():
            try:
                client.load_system_host_keys(str(path))
            except (OSError, paramiko.SSHException) as exc:
                raise BadInput(f"known_hosts file {path} is unreadable: {one_line(exc)}") from None
    client.set_missing_host_key_policy(_UnknownHostKey() if host_key_checking(conn.ssh_config)
                                       else paramiko.AutoAddPolicy())
    try:
        conn.open()
    except HarnessError:
        conn.close()
        raise
    except paramiko.BadHostKeyException as exc:
        conn.close()
        raise BadInput(f"host key of {where} does not match known_hosts (got {exc.key.get_name()}): "
                       "refusing to connect; nothing was changed") from None
    except paramiko.AuthenticationException as exc:
        conn.close()
        raise BadInput(f"SSH authentication failed for {where} ({one_line(exc)}): keys come from your ssh config "
                       "(IdentityFile) and ssh-agent") from None
    except socket.gaierror as exc:
        conn.close()
        raise BadInput(f"cannot resolve SSH host {conn.host!r} ({one_line(exc)})") from None
    except (paramiko.ssh_exception.NoValidConnectionsError, ConnectionError) as exc:
        conn.close()
        raise BadInput(f"cannot reach {where}: connection refused or unreachable ({one_line(exc)})") from None
    except (TimeoutError, socket.timeout):
        conn.close()
        raise BadInput(f"cannot reach {where}: timed out after {CONNECT_TIMEOUT_S}s") from None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        conn.close()
        raise BadInput(f"SSH connection to {where} failed: {one_line(exc)}") from None
    return SshRunner(spec.strip(), conn)
