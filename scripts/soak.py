"""Soak: a long moderate-rate run with the harness's and the load generator's memory and fds sampled.

Deploys the local stack (in this process's CTB_STATE_DIR), runs the normal measured hammer phase for
each system in turn with the windows splitting `--minutes` between them, and meanwhile samples, once
every `--interval` seconds, the RSS and open file descriptors of this process (the harness: the same
code `inv hammer` runs) and of the load generator's process trees. Growth is compared between a
baseline (the median of the samples in the 2nd minute of each window, after start-up allocations)
and the end (the median of the last minute). Exit 1 when any growth reaches `--max-growth`
(default 10 %) or a run failed; everything started is stopped at the end, also on Ctrl-C.

    CTB_STATE_DIR=/tmp/s CTB_RESULTS_DIR=/tmp/r python -m scripts.soak --minutes 30 --qps 50
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from typing import Any

import psutil

from scripts import bench, config, deploy, down, paths, state
from scripts.errors import RunFailed, cli_entry

GENERATOR_NAMES = ("ct_hammer", "hammer", "loadgen")  # process names of the load generators


def _tree_usage(root: psutil.Process) -> tuple[int, int]:
    rss = fds = 0
    for p in [root] + root.children(recursive=True):
        try:
            rss += p.memory_info().rss
            fds += p.num_fds()
        except psutil.Error:
            continue
    return rss, fds


class Watcher:
    """Samples the harness (this process) and every generator tree (our children that are not components)."""

    def __init__(self, component_pids: set[int], interval: float):
        self.me = psutil.Process()
        self.component_pids = component_pids
        self.interval = interval
        self.rows: list[dict[str, Any]] = []  # {t, who, rss, fds}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="soak-watcher", daemon=True)

    def sample(self) -> None:
        now = time.monotonic()
        self.rows.append({"t": now, "who": "harness", "rss": self.me.memory_info().rss, "fds": self.me.num_fds()})
        for child in self.me.children(recursive=False):
            if child.pid in self.component_pids:
                continue
            try:
                name = child.name()
                if not name.startswith(GENERATOR_NAMES) and "scripts.loadgen" not in " ".join(child.cmdline()):
                    continue  # a short-lived helper (git, mariadb client), not the generator
                rss, fds = _tree_usage(child)
            except psutil.Error:
                continue
            self.rows.append({"t": now, "who": f"generator:{name}:{child.pid}", "rss": rss, "fds": fds})

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> "Watcher":
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def growth(rows: list[dict[str, Any]], key: str, *, base_from: float, base_to: float, end_s: float = 60.0
           ) -> dict[str, Any] | None:
    """Median of `key` in [base_from, base_to) vs the median over the last `end_s` seconds (pure)."""
    if not rows:
        return None
    last_t = rows[-1]["t"]
    base = [r[key] for r in rows if base_from <= r["t"] < base_to]
    end = [r[key] for r in rows if r["t"] >= last_t - end_s]
    if not base or not end:
        return None
    b, e = statistics.median(base), statistics.median(end)
    return {"baseline": b, "end": e, "growth": (e - b) / b if b else 0.0,
            "span_s": round(last_t - rows[0]["t"], 1), "samples": len(rows)}


def summarise(rows: list[dict[str, Any]], warmup: float) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for who in dict.fromkeys(r["who"] for r in rows):
        mine = [r for r in rows if r["who"] == who]
        t0 = mine[0]["t"] + (warmup if who.startswith("generator") else 0.0)
        out[who] = {k: growth(mine, k, base_from=t0 + 60, base_to=t0 + 120) for k in ("rss", "fds")}
    return out


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="total measured time over all systems")
    parser.add_argument("--qps", type=float, default=50.0, help="offered entries/s per system (moderate)")
    parser.add_argument("--systems", default="trillian,tesseract")
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--loadgen", default=None, help=f"uniform or native (default {config.DEFAULTS['loadgen']})")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between RSS/fd samples")
    parser.add_argument("--max-growth", type=float, default=0.10)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    systems = config.parse_systems(args.systems)
    per_system_s = args.minutes * 60 / len(systems)
    settings = config.settings(systems=",".join(systems), qps=args.qps, warmup=args.warmup,
                               duration=per_system_s, loadgen=args.loadgen)
    started = time.monotonic()
    st = deploy.deploy(settings)
    watcher = None
    try:
        pids = {rec["pid"] for rec in st["components"].values()}
        watcher = Watcher(pids, args.interval).start()
        doc = bench.hammer_phase(settings, progress=False)
    finally:
        if watcher is not None:
            watcher.stop()
        down.down()
    figures = summarise(watcher.rows, args.warmup)
    worst = 0.0
    print(f"soak: {args.minutes:g} min at {args.qps:g}/s per system ({', '.join(systems)}, {settings.loadgen} "
          "generator), "
          f"run {doc['run_id']} status {doc['status']}, {time.monotonic() - started:.0f}s wall")
    for who, fig in figures.items():
        parts = []
        for key, g in fig.items():
            if g is None:
                parts.append(f"{key}: too few samples")
                continue
            worst = max(worst, g["growth"])
            unit = (lambda v: f"{v / 2**20:.1f} MiB") if key == "rss" else (lambda v: f"{v:.0f}")
            parts.append(f"{key} {unit(g['baseline'])} -> {unit(g['end'])} ({g['growth']:+.1%})")
        print(f"  {who}: " + "; ".join(parts))
    for system, res in doc["systems"].items():
        print(f"  {system}: {res['status']} {res.get('qps')} QPS {res.get('reason', '')}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"figures": figures, "run_id": doc["run_id"], "status": doc["status"],
                       "results_dir": str(paths.RESULTS_DIR), "args": vars(args)}, fh, indent=2)
    if worst >= args.max_growth:
        raise RunFailed(f"soak: growth {worst:.1%} reaches the {args.max_growth:.0%} limit")
    bench.check_status(doc)
    print(f"soak: ok — worst growth {worst:+.1%} (limit {args.max_growth:.0%})")
    return 0


if __name__ == "__main__":
    main()
