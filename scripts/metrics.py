"""Resource use of the process trees this project started, and what it costs.

`Sampler` (a background thread) reads each watched process tree's cumulative CPU time and RSS once per
interval. Cumulative counters are only ever differenced (window end minus window start, METHOD rule 9);
RSS is averaged and maxed over the samples inside the window. `analyse` is pure: samples in, per-component
figures, generator load, labels and costs out. `inv metrics` runs `analyse` on the latest results.
"""
from __future__ import annotations

import argparse
import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import psutil

from scripts import costs as costs_mod
from scripts import paths, proc
from scripts.errors import BadInput, cli_entry

GIB = 1024 ** 3
CLIENT_BOUND_CORES = 0.9      # a generator using this many cores is assumed to be the limit
SATURATED_SHARE = 0.9         # machine CPU above this share of all cores: everything competed for CPU


@dataclass
class Sample:
    t: float
    cpu_s: float      # cumulative user+system seconds of the live tree (exited children are lost)
    rss: int          # bytes


@dataclass
class Sampler:
    """Samples named process records ({name: state-file record}) every `interval` seconds."""

    targets: dict[str, Mapping]
    interval: float = 1.0
    series: dict[str, list[Sample]] = field(default_factory=dict)
    machine: list[tuple[float, float, float]] = field(default_factory=list)  # (t, busy_s, total_s)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seen: dict[str, dict[int, float]] = field(default_factory=dict)  # per target: pid -> last cpu

    def add(self, name: str, rec: Mapping) -> None:
        with self._lock:
            self.targets[name] = rec

    def sample_once(self) -> None:
        now = time.monotonic()
        with self._lock:
            targets = dict(self.targets)
        for name, rec in targets.items():
            cpu, rss = 0.0, 0
            seen = self._seen.setdefault(name, {})
            for p in proc.tree(rec):
                try:
                    with p.oneshot():
                        times = p.cpu_times()
                        used = times.user + times.system
                        rss += p.memory_info().rss
                except psutil.Error:
                    continue
                seen[p.pid] = used
            # Keep the last CPU reading of processes that exited (e.g. a hammer worker) so the
            # cumulative total never goes backwards.
            cpu = math.fsum(seen.values())
            self.series.setdefault(name, []).append(Sample(now, cpu, rss))
        times = psutil.cpu_times()
        total = sum(times)
        busy = total - times.idle - getattr(times, "iowait", 0.0)
        self.machine.append((now, busy, total))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample_once()

    def start(self) -> "Sampler":
        self.sample_once()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sample_once()

    def export(self) -> dict[str, Any]:
        return {"series": {n: [[round(s.t, 3), round(s.cpu_s, 3), s.rss] for s in ss] for n, ss in self.series.items()},
                "machine": [[round(t, 3), round(b, 3), round(tot, 3)] for t, b, tot in self.machine],
                "cores": psutil.cpu_count() or 1}


# --------------------------------------------------------------------------- pure analysis


def _at(points: list[list[float]], t: float) -> list[float] | None:
    """The first sample at or after t (or the last one before it if none is after)."""
    if not points:
        return None
    for point in points:
        if point[0] >= t:
            return point
    return points[-1]


def window_usage(series: list[list[float]], t0: float, t1: float) -> dict[str, float]:
    start, end = _at(series, t0), _at(series, t1)
    inside = [p for p in series if t0 <= p[0] <= t1] or [p for p in (start, end) if p]
    if start is None or end is None:
        return {"cpu_seconds": 0.0, "cores": 0.0, "rss_mean_mib": 0.0, "rss_peak_mib": 0.0, "ram_gib_seconds": 0.0}
    elapsed = max(end[0] - start[0], 1e-9)
    cpu = max(0.0, end[1] - start[1])
    rss_mean = sum(p[2] for p in inside) / len(inside)
    return {"cpu_seconds": round(cpu, 3), "cores": round(cpu / elapsed, 3),
            "rss_mean_mib": round(rss_mean / 2**20, 1), "rss_peak_mib": round(max(p[2] for p in inside) / 2**20, 1),
            "ram_gib_seconds": round(rss_mean / GIB * (t1 - t0), 3)}


def analyse(samples: dict[str, Any], components: list[str], generators: list[str], t0: float, t1: float
            ) -> dict[str, Any]:
    """Per-component and generator usage over [t0, t1], machine CPU share, and labels."""
    series = samples.get("series", {})
    per = {name: window_usage(series.get(name, []), t0, t1) for name in components}
    gen = {name: window_usage(series.get(name, []), t0, t1) for name in generators}
    gen_cores = sum(g["cores"] for g in gen.values())
    machine = samples.get("machine", [])
    m0, m1 = _at(machine, t0), _at(machine, t1)
    share = None
    if m0 and m1 and m1[2] > m0[2]:
        share = round((m1[1] - m0[1]) / (m1[2] - m0[2]), 3)
    labels = []
    if gen_cores >= CLIENT_BOUND_CORES:
        labels.append("client-bound")
    if share is not None and share >= SATURATED_SHARE:
        labels.append("machine CPU saturated")
    return {
        "components": per,
        "generator": {"processes": gen, "cpu_seconds": round(sum(g["cpu_seconds"] for g in gen.values()), 3),
                      "cores": round(gen_cores, 3)},
        "system_cpu_seconds": round(math.fsum(c["cpu_seconds"] for c in per.values()), 3),
        "system_ram_gib_seconds": round(math.fsum(c["ram_gib_seconds"] for c in per.values()), 3),
        "machine_cpu_share": share,
        "cores": samples.get("cores"),
        "labels": labels,
    }


def cost_section(price_book: dict[str, Any], tier: str, system: str, *, qps: float | None, entries: int,
                 window_s: float, cpu_seconds: float, ram_gib_seconds: float) -> dict[str, Any]:
    """Provisioned and consumed cost of one system, each with its line items and derived ratios."""
    provisioned = costs_mod.provisioned_cost(price_book, tier, system)
    consumed = costs_mod.consumed_cost(price_book, cpu_seconds, ram_gib_seconds, window_s)
    return {
        "provisioned": {**provisioned, "derived": costs_mod.derived(provisioned["usd_per_hour"], qps, entries,
                                                                      window_s, cpu_seconds)},
        "consumed": {**consumed, "derived": costs_mod.derived(consumed["usd_per_hour"], qps, entries, window_s,
                                                               cpu_seconds)},
    }


def add_costs(results: dict[str, Any], price_book: dict[str, Any]) -> dict[str, Any]:
    """Fill each system's `cost` from its measured numbers (failed systems get provisioned cost only)."""
    for system, res in results["systems"].items():
        usage = res.get("resources") or {}
        window = res.get("window_s") or 0.0
        if res.get("status") == "ok" and window > 0:
            res["cost"] = cost_section(price_book, results["tier"], system, qps=res["qps"],
                                       entries=res["entries_integrated"], window_s=window,
                                       cpu_seconds=usage.get("system_cpu_seconds", 0.0),
                                       ram_gib_seconds=usage.get("system_ram_gib_seconds", 0.0))
        else:
            res["cost"] = {"provisioned": costs_mod.provisioned_cost(price_book, results["tier"], system),
                           "consumed": None}
    return results


@cli_entry
def main(argv: list[str] | None = None) -> int:
    from scripts import results as results_mod  # late: results imports this module
    parser = argparse.ArgumentParser(prog="python -m scripts.metrics", description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=None, help="results JSON (default: results/latest)")
    args = parser.parse_args(argv)
    doc = results_mod.load(args.results)
    doc = results_mod.apply_metrics(doc)
    results_mod.save(doc)
    print(results_mod.summary_table(doc))
    return 0


if __name__ == "__main__":
    main()
