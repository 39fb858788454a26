"""Throwaway SSH hosts for the SSH-target tests: real OpenSSH sshd processes started by the test.

Each sshd gets its own host key, sshd_config, authorized_keys and log in a temp dir, listens on a free
port, and is stopped (with its sessions) when the lab closes — the system's ssh service is never touched.
A second host for the load generator lives in a network namespace joined by a veth pair when the
machine allows it (root + `ip netns`), so it reaches the stack over a real non-loopback address; else
it is a second sshd on loopback.

The client side is an ssh_config (CTB_SSH_CONFIG) with one Host alias per host, a throwaway client
key and a known_hosts file holding exactly the hosts' keys.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")


def sshd_available() -> str:
    """'' if a test sshd can run here, else why not."""
    if not Path(SSHD).exists():
        return "openssh-server is not installed (setup.sh installs it)"
    if not shutil.which("ssh-keygen"):
        return "ssh-keygen is not installed"
    if os.geteuid() != 0:
        return "sshd needs root here (privilege separation)"
    return ""


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def _keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ctbench-test", "-f", str(path)],
                   check=True, timeout=30)
    return path


def _wait_listening(address: str, port: int, proc: subprocess.Popen, log: Path, deadline: float = 15) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited ({proc.returncode}): {log.read_text()[-500:]}")
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"sshd on {address}:{port} did not start listening")


@dataclass
class Host:
    alias: str
    address: str
    port: int
    proc: subprocess.Popen | None = None


@dataclass
class Lab:
    dir: Path
    user: str = "root"
    hosts: dict[str, Host] = field(default_factory=dict)
    extra_config: list[str] = field(default_factory=list)
    netns: str = ""
    veth: str = ""
    mode: str = ""
    outside: str = ""

    def __post_init__(self):
        self.client_key = _keygen(self.dir / "client_key")
        self.other_key = _keygen(self.dir / "other_key")
        (self.dir / "authorized_keys").write_text((self.dir / "client_key.pub").read_text())
        os.chmod(self.dir / "authorized_keys", 0o600)
        self.known_hosts = self.dir / "known_hosts"
        self.known_hosts.write_text("")
        (self.dir / "empty_known_hosts").write_text("")

    @property
    def ssh_config(self) -> Path:
        return self.dir / "ssh_config"

    def start(self, alias: str, address: str = "127.0.0.1", *, netns: str = "") -> Host:
        """Start an sshd for `alias` on address:free port (inside `netns` if given) and trust its key."""
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        host_key = _keygen(self.dir / f"{alias}_host_key")
        port = free_port("127.0.0.1") if not netns else 2200 + secrets.randbelow(5000)
        cfg = self.dir / f"sshd_{alias}.conf"
        cfg.write_text("\n".join([
            f"Port {port}", f"ListenAddress {address}", f"HostKey {host_key}",
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}", f"PidFile {self.dir / f'sshd_{alias}.pid'}",
            "StrictModes no", "UsePAM no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes", "PermitRootLogin prohibit-password", "Subsystem sftp internal-sftp",
            "MaxStartups 50", "MaxSessions 50", "LogLevel VERBOSE", ""]))
        log = self.dir / f"sshd_{alias}.log"
        prefix = ["ip", "netns", "exec", netns] if netns else []
        proc = subprocess.Popen([*prefix, SSHD, "-D", "-f", str(cfg), "-E", str(log)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        host = Host(alias, address, port, proc)
        self.hosts[alias] = host
        _wait_listening(address, port, proc, log)
        pub = " ".join((self.dir / f"{alias}_host_key.pub").read_text().split()[:2])
        with self.known_hosts.open("a") as fh:
            fh.write(f"[{address}]:{port} {pub}\n")
        self.write_config()
        return host

    def alias(self, alias: str, address: str, port: int, *, key: Path | None = None,
              known_hosts: Path | None = None) -> str:
        """An extra Host alias (e.g. a wrong key, an unknown host key, a dead port)."""
        self.extra_config.append(self._entry(alias, address, port, key or self.client_key,
                                             known_hosts or self.known_hosts))
        self.write_config()
        return alias

    def _entry(self, alias: str, address: str, port: int, key: Path, known_hosts: Path) -> str:
        return (f"Host {alias}\n  HostName {address}\n  Port {port}\n  User {self.user}\n  IdentityFile {key}\n"
                f"  UserKnownHostsFile {known_hosts}\n  GlobalKnownHostsFile /dev/null\n  ConnectTimeout 5\n")

    def write_config(self) -> None:
        entries = [self._entry(h.alias, h.address, h.port, self.client_key, self.known_hosts)
                   for h in self.hosts.values()]
        self.ssh_config.write_text("\n".join(entries + self.extra_config))

    def make_netns(self) -> str:
        """A network namespace joined to this one by a veth pair; returns the namespace's address."""
        tag = secrets.token_hex(3)
        self.netns, self.veth = f"ctb-{tag}", f"ctb{tag}a"
        octet2, octet3 = 100 + secrets.randbelow(150), secrets.randbelow(250)
        self.outside, inside = f"10.{octet2}.{octet3}.1", f"10.{octet2}.{octet3}.2"
        for cmd in (["ip", "netns", "add", self.netns],
                    ["ip", "link", "add", self.veth, "type", "veth", "peer", "name", f"ctb{tag}b"],
                    ["ip", "link", "set", f"ctb{tag}b", "netns", self.netns],
                    ["ip", "addr", "add", f"{self.outside}/30", "dev", self.veth],
                    ["ip", "link", "set", self.veth, "up"],
                    ["ip", "netns", "exec", self.netns, "ip", "addr", "add", f"{inside}/30", "dev", f"ctb{tag}b"],
                    ["ip", "netns", "exec", self.netns, "ip", "link", "set", f"ctb{tag}b", "up"],
                    ["ip", "netns", "exec", self.netns, "ip", "link", "set", "lo", "up"]):
            subprocess.run(cmd, check=True, capture_output=True, timeout=30)
        return inside

    def close(self) -> None:
        for host in self.hosts.values():
            if host.proc is None:
                continue
            # The listener and every session it forked (remote commands still running, if any).
            try:
                procs = [psutil.Process(host.proc.pid)] + psutil.Process(host.proc.pid).children(recursive=True)
            except psutil.Error:
                procs = []
            for p in procs:
                try:
                    p.send_signal(signal.SIGTERM)
                except psutil.Error:
                    pass
            _gone, alive = psutil.wait_procs(procs, timeout=10)
            for p in alive:
                try:
                    p.kill()
                except psutil.Error:
                    pass
            try:
                host.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self.netns:
            subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, timeout=30)
            subprocess.run(["ip", "link", "del", self.veth], capture_output=True, timeout=30)


def two_hosts(directory: Path) -> Lab:
    """A lab with `stack` and `loadgen` hosts: loadgen in a network namespace if possible, else loopback."""
    lab = Lab(directory)
    try:
        inside = lab.make_netns()
        lab.start("stack", lab.outside)
        lab.start("loadgen", inside, netns=lab.netns)
        lab.mode = "netns"
        return lab
    except (subprocess.CalledProcessError, RuntimeError, OSError):
        lab.close()
    fallback = directory / "loopback"
    fallback.mkdir()
    lab = Lab(fallback)
    try:
        lab.start("stack")
        lab.start("loadgen")
    except BaseException:
        lab.close()
        raise
    lab.mode = "loopback"
    return lab
