"""Stop everything this project started, by pid (checked against the recorded start time), never by name.

Keeps results and logs; safe to run twice or after a crash. If something cannot be stopped the state
file is kept, marked `cleanup_failed`, and the command exits 1 naming what is still running.
"""
from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor

from scripts import proc, results, state
from scripts.errors import RunFailed, cli_entry


# Components that use no one else's service stop together; a backend stops after everything that uses
# it (ct_server -> log server -> MariaDB; the signer -> MariaDB). Trillian's signer takes ~10 s to exit
# and its log server ~5 s (both sleep to "tidy up"): one after the other, down took 15 s.
STOP_WAVE = {"trillian_log_server": 1, "trillian_log_signer": 1, "mariadb": 2}


def stop_waves(st: dict) -> list[list[tuple[str, dict]]]:
    """The components in waves (pure): each wave newest first, stopped in parallel, waves in order."""
    waves: dict[int, list[tuple[str, dict]]] = {}
    for name, rec in state.stop_order(st):
        waves.setdefault(STOP_WAVE.get(name, 0), []).append((name, rec))
    return [waves[k] for k in sorted(waves)]


def down(*, log=print) -> dict:
    # A broken state file cannot be cleaned up by down itself (telling the user to run down would loop):
    # say what to do instead, and leave the file for them to read.
    st = state.load(required=False, hint="down cannot tell what to stop: stop leftover processes by hand "
                    "(their pids and logs may be in the file), then delete it")
    if st is None:
        log("down: nothing is deployed")
        return {"stopped": [], "left": []}
    if st["target"] != "local":
        raise RunFailed(f"down: the deployment is on target {st['target']!r}: run `inv down --target {st['target']}`")
    with proc.signals_deferred():
        return _stop_everything(st, log)


def _stop_everything(st: dict, log) -> dict:
    stopped, left = [], []
    for wave in stop_waves(st):
        with ThreadPoolExecutor(max_workers=len(wave)) as pool:
            signalled = list(pool.map(lambda item: proc.stop(item[1]), wave))
        for (name, rec), was_running in zip(wave, signalled):
            if was_running:
                stopped.append(name)
            if proc.alive(rec):
                left.append(name)
    if left:
        st["cleanup_failed"] = left
        state.save(st)
        marked = results.mark_cleanup_failed(st, left, str(state.state_file()))
        raise RunFailed(f"cleanup failed: still running: {', '.join(left)} (state kept in {state.state_file()}"
                        f"{f'; results kept, marked cleanup failed: {marked}' if marked else ''})")
    state.remove()
    log(f"down: stopped {', '.join(stopped) if stopped else 'nothing (all had already exited)'}")
    return {"stopped": stopped, "left": left}


@cli_entry
def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m scripts.down", description=__doc__.splitlines()[0]).parse_args(argv)
    down()
    return 0


if __name__ == "__main__":
    main()
