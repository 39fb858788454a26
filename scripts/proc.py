"""The one door for subprocesses: every external program the harness runs goes through here.

* `run` — a command to completion, with a timeout, raise-on-failure and the exact command logged
  (secrets masked).
* `spawn` — a long-running component in its own session (process group), output to its log file;
  returns a record (pid + process start time) that is saved in the state file.
* `alive` / `stop` — by pid, checked against the recorded start time so a recycled pid is never
  signalled; never by process name.
* `wait_for` — poll a condition until a deadline, failing early when a watched process exits.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

import psutil

from scripts.errors import Interrupted, RunFailed

log = logging.getLogger("ctbench.proc")
MASK = "****"


def _masked(cmd: Iterable[str], secrets: Iterable[str]) -> str:
    text = shlex.join([str(c) for c in cmd])
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def run(cmd: list[str], *, timeout: float, env: Mapping[str, str] | None = None, cwd: str | Path | None = None,
        check: bool = True, input: str | None = None, secrets: Iterable[str] = ()) -> subprocess.CompletedProcess[str]:
    """Run to completion. RunFailed (one line, stderr tail) on timeout, a missing program, or non-zero exit."""
    secrets = list(secrets)
    shown = _masked(cmd, secrets)
    log.info("run: %s", shown)
    full_env = None if env is None else {**os.environ, **env}
    try:
        with signals_deferred():  # an interrupt inside Popen would orphan the child: deliver it after
            child = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, stdin=subprocess.PIPE if input is not None else None, env=full_env,
                                     cwd=cwd, start_new_session=True)
    except FileNotFoundError:
        raise RunFailed(f"program not found: {cmd[0]}") from None
    try:
        stdout, stderr = child.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(child)
        raise RunFailed(f"timed out after {timeout:g}s: {shown}") from None
    except BaseException:  # an interrupt: take the whole process group down with us
        _kill_group(child)
        raise
    proc = subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)
    if check and proc.returncode != 0:
        tail = _masked([" ".join((proc.stderr or proc.stdout or "").strip().splitlines()[-3:])], secrets)
        raise RunFailed(f"exit {proc.returncode} from {Path(str(cmd[0])).name}: {tail.strip(chr(39))}")
    return proc


def _kill_group(child: subprocess.Popen) -> None:
    """SIGKILL the child's whole process group (it leads one: start_new_session), not only the child:
    killing just the child would orphan its helpers (e.g. go build's compile processes)."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        child.communicate(timeout=5)
    except (subprocess.TimeoutExpired, ValueError, OSError):
        pass


def spawn(name: str, cmd: list[str], *, log_path: Path, env: Mapping[str, str] | None = None,
          cwd: str | Path | None = None, secrets: Iterable[str] = ()) -> dict:
    """Start a component in its own process group; stdout+stderr appended to log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    shown = _masked(cmd, secrets)
    log.info("spawn %s: %s", name, shown)
    full_env = {**os.environ, **(env or {})}
    with open(log_path, "ab") as out:
        out.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} start: {shown}\n".encode())
        out.flush()
        # An interrupt inside Popen (after the fork, before it returns) would lose the child's pid: hold it
        # until the child is registered, where stop_strays() can find it. (Python-level handlers are not
        # inherited: the child starts with default signal actions.)
        with signals_deferred():
            try:
                child = subprocess.Popen([str(c) for c in cmd], stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=full_env, cwd=cwd, start_new_session=True)
            except FileNotFoundError:
                raise RunFailed(f"{name}: program not found: {cmd[0]}") from None
            # Keep the Popen object reachable so the exit status is collected (no zombies) while we live.
            _CHILDREN[child.pid] = child
    try:
        started = psutil.Process(child.pid).create_time()
    except psutil.NoSuchProcess:
        started = 0.0
    return {"name": name, "pid": child.pid, "create_time": started, "start_ticks": start_ticks(child.pid),
            "cmd": shown, "log": str(log_path)}


_CHILDREN: dict[int, subprocess.Popen] = {}


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while a teardown runs and deliver them when it is done: a second Ctrl-C (Trillian
    takes ~10 s to stop) must not abort the cleanup half-way and leave the rest running. Python runs signal
    handlers in the main thread only, so elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: caught.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if caught:
            os.kill(os.getpid(), caught[0])  # now, to the handler that was in place


def spawned() -> set[int]:
    """Pids of every process this process has spawned (running or not)."""
    return set(_CHILDREN)


def stop_strays(since: set[int], recorded: Iterable[int] = ()) -> list[int]:
    """Stop children spawned after the `since` snapshot that nobody recorded: an interrupt that lands
    between spawn() and the caller's bookkeeping (state file, generator list) would leave them running."""
    strays = []
    for pid in sorted(spawned() - set(since) - set(recorded)):
        child = _CHILDREN[pid]
        if child.poll() is None:
            try:
                born = psutil.Process(pid).create_time()
            except psutil.Error:
                continue
            stop({"name": f"pid {pid}", "pid": pid, "create_time": born, "start_ticks": start_ticks(pid)}, grace=5)
            strays.append(pid)
    return strays


def start_ticks(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (/proc/PID/stat field 22): unlike psutil's
    create_time (boot time + ticks, with boot time derived from the wall clock) it does not move when the
    wall clock is stepped. None where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
        return int(data[data.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def same_process(p: psutil.Process, rec: Mapping) -> bool:
    """Is `p` the process `rec` recorded, and not a later one that got its pid? Compared on start ticks when
    both are known: a wall-clock step (NTP, a resumed VM) shifted every create_time here by 18 s, and the
    harness then took every live component for dead (runs failed, down deleted the state and stopped
    nothing)."""
    if rec.get("start_ticks") is not None:
        ticks = start_ticks(p.pid)
        if ticks is not None:
            return ticks == int(rec["start_ticks"])
    if rec.get("create_time"):
        return abs(p.create_time() - float(rec["create_time"])) <= 0.05
    return True


def _process(rec: Mapping) -> psutil.Process | None:
    try:
        proc = psutil.Process(int(rec["pid"]))
        if not same_process(proc, rec):
            return None  # the pid was recycled: not ours
        if proc.status() == psutil.STATUS_ZOMBIE:
            child = _CHILDREN.get(proc.pid)
            if child is not None:
                child.poll()
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied, KeyError, ValueError, TypeError):
        return None


def alive(rec: Mapping) -> bool:
    return _process(rec) is not None


def stalled(rec: Mapping) -> bool:
    """The process exists but is stopped (SIGSTOP / job control): it answers nothing until continued."""
    p = _process(rec)
    try:
        return p is not None and p.status() in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)
    except psutil.Error:
        return False


def exit_code(rec: Mapping) -> int | None:
    """Exit status of a component this process spawned (None if unknown or still running)."""
    child = _CHILDREN.get(int(rec["pid"]))
    return None if child is None else child.poll()


def stop(rec: Mapping, *, grace: float = 10.0, sig: int = signal.SIGTERM) -> bool:
    """Stop a recorded process and its process group; True if something was signalled."""
    proc = _process(rec)
    if proc is None:
        _reap(rec)
        orphans = _group_leftovers(rec)
        if not orphans:
            return False
        procs = orphans  # the leader died (e.g. SIGKILL) but its helpers live on in its process group
    else:
        procs = [proc] + _descendants(proc)
    if proc is not None:
        try:
            os.killpg(proc.pid, sig)  # spawned with start_new_session: pgid == pid
        except (ProcessLookupError, PermissionError):
            pass
    for p in procs:
        try:
            p.send_signal(sig)
            p.resume()  # a stalled (SIGSTOPped) process only acts on the signal once continued
        except psutil.Error:
            pass
    still = _wait_gone(procs, grace)
    for p in still:
        try:
            p.kill()
        except psutil.Error:
            pass
    _wait_gone(still, 5)
    _reap(rec)
    return True


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until each process has exited; return those still running at the deadline. An exited process
    that is a zombie counts as gone: once the deployer has exited, components belong to init, which may
    reap them seconds later (psutil.wait_procs waited for that, then SIGKILLed processes already dead)."""
    end = time.monotonic() + timeout
    while True:
        still = []
        for p in procs:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    still.append(p)
            except psutil.Error:
                pass
        if not still or time.monotonic() >= end:
            return still
        time.sleep(0.05)


def _group_leftovers(rec: Mapping) -> list[psutil.Process]:
    """Live members of the process group a recorded process led (spawned with start_new_session, so its
    pgid is its pid) after that process died: never someone else's group after a pid was recycled."""
    try:
        pgid, born = int(rec["pid"]), float(rec.get("create_time") or 0)
        born_ticks = None if rec.get("start_ticks") is None else int(rec["start_ticks"])
    except (KeyError, TypeError, ValueError):
        return []
    if not born and born_ticks is None:
        return []
    try:
        if not same_process(psutil.Process(pgid), rec):
            return []  # the pid now belongs to another process: so does any group of that number
    except psutil.NoSuchProcess:
        pass  # Linux does not reuse a pid while a group of that number has members: they are ours
    except psutil.Error:
        return []
    out = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) != pgid or p.status() == psutil.STATUS_ZOMBIE:
                continue
            ticks = start_ticks(p.pid)
            if (ticks >= born_ticks) if (ticks is not None and born_ticks is not None) else (p.create_time() >= born - 0.05):
                out.append(p)
        except (OSError, psutil.Error):
            continue
    return out


def _reap(rec: Mapping) -> None:
    child = _CHILDREN.get(int(rec.get("pid", -1)))
    if child is not None:
        try:
            child.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass


def _descendants(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.Error:
        return []


def tree(rec: Mapping) -> list[psutil.Process]:
    """The recorded process and its descendants (for metrics)."""
    proc = _process(rec)
    return [] if proc is None else [proc] + _descendants(proc)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(what: str, condition: Callable[[], object], *, deadline_s: float, interval: float = 0.2,
             watch: Mapping | None = None) -> object:
    """Poll `condition` until it returns a truthy value; RunFailed at the deadline or if `watch` exits."""
    end = time.monotonic() + deadline_s
    last_error = ""
    while True:
        try:
            value = condition()
            if value:
                return value
        except Interrupted:
            raise  # SIGTERM arrives as an exception: never swallow it as "not ready yet"
        except Exception as exc:  # noqa: BLE001 - the condition's failure is the diagnosis
            last_error = " ".join(str(exc).split())[:200]
        if watch is not None and not alive(watch):
            code = exit_code(watch)
            raise RunFailed(f"{watch['name']} exited during start-up"
                            f"{f' (exit {code})' if code is not None else ''}; log: {watch['log']}"
                            f"{': ' + log_tail(watch['log'], 1) if watch.get('log') else ''}")
        if time.monotonic() >= end:
            raise RunFailed(f"timed out after {deadline_s:g}s waiting for {what}"
                            f"{f' (last error: {last_error})' if last_error else ''}")
        time.sleep(interval)


def log_tail(path: str | Path, lines: int = 5) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 8192))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])
