"""Drive each deployed log with a write load and measure sustained integration (METHOD rules 1, 2, 6).

Systems run one after another. For each: start the load generator, let it warm up, then measure the
verified signed tree's growth over the window: sustained QPS = (tree size at window end - at window
start) / elapsed. Counters are read at the window's edges, never reset. The generator must still be
running at the window's end; every component must be alive throughout; the tree must never shrink or
fork. After the window the generator is stopped and the tree is watched until it stops growing: what it
still integrates is the backlog the log had accepted but not integrated.

Generators (`--loadgen`):
  native  — the upstream hammers, configured for pure writes: ct_hammer for Trillian (add-chain only,
            no invalid/duplicate chains, several processes, up to 8 chains per operation, rate-limited
            to the target) and TesseraCT's hammer (writers and max write ops sized to the target, no
            readers, no duplicates). They are closed-loop tools: the offered rate is a ceiling.
  uniform — the project's own open-loop generator (scripts.loadgen), identical for both logs.
"""
from __future__ import annotations

import base64
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import requests

from scripts import config, ctclient, ctverify, metrics, paths, pki, proc, smoke
from scripts.errors import RunFailed

CT_HAMMER_CHAINS_PER_OP = 8          # --max_parallel_chains: each op adds 1..8 chains, mean 4.5
CT_HAMMER_QPS_PER_PROCESS = 150      # processes = ceil(qps / this)
TESSERACT_WRITERS_PER_QPS = 3        # writers wait ~1-2 s for the publication awaiter
DRAIN_QUIET_S = 4.0                  # tree unchanged this long after the load stops = drained
DRAIN_DEADLINE_S = 60.0
WALL_SLACK_S = 120.0                 # wall-clock timeout = warmup + duration + this
READ_FAILURES_FATAL = 10             # consecutive tree-head read failures that fail the run
STALL_DEADLINE_S = 5.0               # a component or generator stopped (SIGSTOP) this long ends the run at once;
                                     # stopped for any time at all, it fails the run when the window ends
READ_PATH = {"trillian": "ct_server", "tesseract": "tesseract_static"}  # who serves the tree head
BACKLOG_TOLERANCE = 0.10             # backlog above this share of integrated entries: not sustainable
STABILITY_BUCKET_S = 5.0
UNSTABLE_COV = 0.10


@dataclass
class Generator:
    kind: str
    description: str
    procs: dict[str, dict]                       # name -> proc record
    flags: dict[str, Any]
    offered_qps: float
    result_file: Path | None = None
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    finish_deadline_s: float = 0.0   # > 0: let it finish its own schedule (uniform) before stopping it

    def dead(self) -> list[str]:
        return [n for n, rec in self.procs.items() if not proc.alive(rec)]

    def stop(self, *, window_completed: bool = False) -> None:
        if window_completed and self.finish_deadline_s > 0:
            end = time.monotonic() + self.finish_deadline_s
            while time.monotonic() < end and not all(not proc.alive(r) for r in self.procs.values()):
                time.sleep(0.2)
        for name, rec in self.procs.items():
            code = proc.exit_code(rec)
            proc.stop(rec, grace=5)
            self.exit_codes[name] = code  # None = we stopped it (it was still running)

    def result(self) -> dict[str, Any] | None:
        if self.result_file is None:
            return None
        try:
            import json
            return json.loads(self.result_file.read_text())
        except (OSError, ValueError):
            return None


# --------------------------------------------------------------------------- generators


def ct_hammer_plan(qps: float) -> tuple[int, int]:
    """(processes, ops/s rate limit per process) so that processes x rate x mean chains/op ~= qps."""
    processes = max(1, math.ceil(qps / CT_HAMMER_QPS_PER_PROCESS))
    mean_chains = (1 + CT_HAMMER_CHAINS_PER_OP) / 2
    return processes, max(1, round(qps / processes / mean_chains))


def start_ct_hammer(st: dict, settings: config.Settings, run_dir: Path, budget_s: float) -> Generator:
    info = st["systems"]["trillian"]
    processes, rate = ct_hammer_plan(settings.qps)
    flags = {"log_config": info["log_config"], "ct_http_servers": info["ctfe_host"],
             "testdata_dir": str(Path(st["pki"]["dir"]) / "ct_hammer"), "banner": "false",
             "add_chain": "1", "add_pre_chain": "0", "get_sth": "0", "get_sth_consistency": "0",
             "get_proof_by_hash": "0", "get_entries": "0", "get_roots": "0", "get_entry_and_proof": "0",
             "invalid_chance": "0", "duplicate_chance": "0", "max_parallel_chains": str(CT_HAMMER_CHAINS_PER_OP),
             "rate_limit": str(rate), "req_deadline": "10s"}
    procs = {}
    for i in range(processes):
        name = f"ct_hammer_{i}"
        procs[name] = proc.spawn(name, [str(paths.BIN_DIR / "ct_hammer"), *[f"--{k}={v}" for k, v in flags.items()]],
                                 log_path=run_dir / "logs" / f"{name}.log")
    offered = processes * rate * (1 + CT_HAMMER_CHAINS_PER_OP) / 2
    return Generator("native", f"ct_hammer x{processes} (add-chain only, {rate} ops/s each, 1-8 chains/op)",
                     procs, {"processes": processes, **flags}, offered)


def start_tesseract_hammer(st: dict, settings: config.Settings, run_dir: Path, budget_s: float) -> Generator:
    info = st["systems"]["tesseract"]
    hammer_dir = Path(st["pki"]["dir"]) / "tesseract_hammer"
    pub = base64.b64encode(pki.public_key_der(Path(info["public_key"]))).decode()
    writers = max(8, math.ceil(settings.qps * TESSERACT_WRITERS_PER_QPS))
    flags = {"log_url": info["read_url"] + "/", "write_log_url": info["base_url"] + "/", "origin": info["origin"],
             "log_public_key": pub, "intermediate_ca_cert_path": str(hammer_dir / "intermediate.pem"),
             "intermediate_ca_key_path": str(hammer_dir / "intermediate.key.pem"),
             "cert_sign_private_key_path": str(hammer_dir / "leaf_signing.key.pem"),
             "max_write_ops": str(int(math.ceil(settings.qps))), "num_writers": str(writers),
             "max_read_ops": "0", "num_readers_random": "0", "num_readers_full": "0", "num_mmd_verifiers": "0",
             "dup_chance": "0", "show_ui": "false", "max_runtime": f"{int(budget_s)}s",
             "serial_offset": str(int(time.time() * 1000))}
    name = "tesseract_hammer"
    rec = proc.spawn(name, [str(paths.BIN_DIR / "hammer"), *[f"--{k}={v}" for k, v in flags.items()]],
                     log_path=run_dir / "logs" / f"{name}.log")
    return Generator("native", f"TesseraCT hammer ({writers} writers, max {flags['max_write_ops']} writes/s, "
                     "no readers, no duplicates)", {name: rec}, flags, float(flags["max_write_ops"]))


UNIFORM_TAIL_S = 3.0
CLIENT_BOUND_TOTAL_CORES = 0.5        # the uniform schedule runs this long past the window's end


def start_uniform(system: str):
    def start(st: dict, settings: config.Settings, run_dir: Path, budget_s: float) -> Generator:
        info = st["systems"][system]
        pki_dir = Path(st["pki"]["dir"])
        out = run_dir / f"loadgen_{system}.json"
        flags = {"url": info["add_chain_url"], "log-public-key": info["public_key"],
                 "intermediate": str(pki_dir / "intermediate.pem"),
                 "intermediate-key": str(pki_dir / "intermediate.key.pem"),
                 "rate": f"{settings.qps:g}", "duration": f"{settings.warmup + settings.duration + UNIFORM_TAIL_S:g}",
                 "warmup": f"{settings.warmup:g}", "max-in-flight": str(settings.max_in_flight),
                 "label": system, "out": str(out),
                 # issue 4: a generator using half a core or more (sender + helpers) labels the run
                 # client-bound on a machine it shares with the log
                 "client-bound-total-cpu": f"{CLIENT_BOUND_TOTAL_CORES:g}"}
        name = f"loadgen_{system}"
        rec = proc.spawn(name, [sys.executable, "-m", "scripts.loadgen", *[f"--{k}={v}" for k, v in flags.items()]],
                         log_path=run_dir / "logs" / f"{name}.log", cwd=paths.REPO)
        return Generator("uniform", f"uniform open-loop generator ({settings.qps:g}/s constant arrivals, "
                         f"≤ {settings.max_in_flight} in flight, fresh ECDSA P-256 leaves, chain [leaf, intermediate])",
                         {name: rec}, flags, float(settings.qps), result_file=out,
                         finish_deadline_s=UNIFORM_TAIL_S + 90.0)
    return start


STARTERS: dict[tuple[str, str], Callable[..., Generator]] = {
    ("uniform", "trillian"): start_uniform("trillian"),
    ("uniform", "tesseract"): start_uniform("tesseract"),
    ("native", "trillian"): start_ct_hammer,
    ("native", "tesseract"): start_tesseract_hammer,
}


# --------------------------------------------------------------------------- pure judgement


def per_interval_rates(points: list[tuple[float, int, int]], t0: float, t1: float, bucket: float) -> list[float]:
    """Integration rate in consecutive `bucket`-second slices of the window [t0, t1] (local clock).

    `points` are (local time, tree size, log timestamp ms) reads. Sizes between distinct signed heads are
    interpolated on the log's own timestamps, so TesseraCT's 1.5 s checkpoint steps do not show up as
    instability; the log timestamps are mapped to the local clock through the first head in the window.
    """
    heads: dict[int, tuple[float, int]] = {}
    for local_t, size, ts_ms in points:
        heads.setdefault(size, (ts_ms / 1000.0, size))
    series = sorted(heads.values())
    inside = [p for p in points if p[0] >= t0]
    if len(series) < 2 or not inside:
        return []
    offset = inside[0][0] - inside[0][2] / 1000.0  # local - log clock
    rates = []
    edge = t0
    while edge + bucket <= t1 + 1e-6:
        a = _size_at(series, edge - offset)
        b = _size_at(series, edge + bucket - offset)
        rates.append((b - a) / bucket)
        edge += bucket
    return rates


def _size_at(series: list[tuple[float, int]], t: float) -> float:
    """Tree size at log time t, linearly interpolated between signed heads (clamped at the ends)."""
    if t <= series[0][0]:
        return float(series[0][1])
    for (ta, sa), (tb, sb) in zip(series, series[1:]):
        if ta <= t <= tb:
            return sa + (sb - sa) * ((t - ta) / (tb - ta) if tb > ta else 1.0)
    return float(series[-1][1])


def stability(rates: list[float]) -> dict[str, Any]:
    if len(rates) < 2 or statistics.fmean(rates) <= 0:
        return {"cov": None, "unstable": None, "bucket_s": STABILITY_BUCKET_S, "buckets": len(rates)}
    cov = statistics.pstdev(rates) / statistics.fmean(rates)
    return {"cov": round(cov, 4), "unstable": cov > UNSTABLE_COV, "bucket_s": STABILITY_BUCKET_S,
            "buckets": len(rates)}


def judge(obs: dict[str, Any], duration: float) -> tuple[str, str]:
    """('ok', '') or ('failed', reason) — the guards of METHOD rule 2, in order of diagnosis."""
    if obs.get("error"):
        return "failed", obs["error"]
    if obs.get("dead_components"):
        return "failed", f"component died during the run: {', '.join(obs['dead_components'])}"
    if obs.get("stalled_components"):
        return "failed", (f"component stalled (stopped, not scheduled) during the run: "
                          f"{', '.join(obs['stalled_components'])}")
    if obs.get("generator_exited"):
        codes = obs.get("generator_exit_codes", {})
        return "failed", (f"load generator exited before the window ended ("
                          + ", ".join(f"{n} exit {c}" for n, c in codes.items()) + ")")
    elapsed = obs.get("window_s") or 0.0
    if elapsed < duration * config.MIN_WINDOW_FRACTION:
        return "failed", f"measured window too short: {elapsed:.1f}s of {duration:g}s"
    entries = obs.get("entries_integrated") or 0
    if entries < config.MIN_ENTRIES:
        return "failed", f"only {entries} entries integrated in the window (minimum {config.MIN_ENTRIES})"
    return "ok", ""


# --------------------------------------------------------------------------- the measured run


class Progress:
    """Live integrated QPS: a rich progress bar on a terminal, a line every 10 s otherwise."""

    def __init__(self, system: str, total_s: float, enabled: bool = True):
        self.system, self.total = system, total_s
        self.enabled = enabled
        self.tty = sys.stdout.isatty()
        self.last_line = 0.0
        self.bar = None
        if enabled and self.tty:
            from rich.progress import BarColumn, Progress as RichProgress, TextColumn, TimeRemainingColumn
            self.bar = RichProgress(TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(),
                                    transient=True)
            self.task = self.bar.add_task(system, total=total_s)
            self.bar.start()

    def update(self, phase: str, elapsed: float, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(self.task, completed=min(elapsed, self.total), description=f"{self.system} {phase}: {text}")
        elif time.monotonic() - self.last_line >= 10:
            self.last_line = time.monotonic()
            print(f"  {self.system} {phase} {elapsed:5.0f}/{self.total:.0f}s  {text}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def measure(st: dict, system: str, settings: config.Settings, run_dir: Path, *, progress: bool = True,
            log=print) -> dict[str, Any]:
    """Run the load against one system and return its observations (judged, not yet costed)."""
    info = st["systems"][system]
    components = {n: st["components"][n] for n in info["components"]}
    reader = ctclient.TreeReader(system, info, timeout=3.0)
    budget = settings.warmup + settings.duration + WALL_SLACK_S
    obs: dict[str, Any] = {"system": system, "offered_qps": settings.qps, "duration_s": settings.duration,
                           "warmup_s": settings.warmup, "tree": []}
    sampler = metrics.Sampler(dict(components)).start()
    gen: Generator | None = None
    children_before = proc.spawned()
    bar = Progress(system, settings.warmup + settings.duration, enabled=progress)
    t_start = time.monotonic()
    try:
        obs["start_tree_size"] = reader.read().size
        starter = STARTERS.get((settings.loadgen, system))
        if starter is None:
            raise RunFailed(f"no {settings.loadgen} load generator for {system}")
        gen = starter(st, settings, run_dir, budget)
        for name, rec in gen.procs.items():
            sampler.add(name, rec)
        obs["generator"] = {"kind": gen.kind, "description": gen.description, "flags": gen.flags,
                            "offered_qps": round(gen.offered_qps, 2)}
        t_start = time.monotonic()
        t0, t1 = t_start + settings.warmup, t_start + settings.warmup + settings.duration
        head0 = head1 = None
        failures, first_failure = 0, 0.0
        stalled_since: dict[str, float] = {}
        ever_stalled: set[str] = set()   # a window with a suspended component measured the suspension
        while True:
            now = time.monotonic()
            if now - t_start > budget:
                raise RunFailed(f"timed out after {budget:.0f}s")
            try:
                head = reader.read()
                failures = 0
                obs["tree"].append((round(now, 3), head.size, head.timestamp_ms))
            except ctverify.VerifyError as exc:
                raise RunFailed(f"signed tree failed verification: {exc}") from None
            except (requests.RequestException, RunFailed) as exc:
                failures += 1
                first_failure = first_failure if failures > 1 else now
                if failures >= READ_FAILURES_FATAL:
                    raise RunFailed(f"cannot read {system}'s signed tree head (served by {READ_PATH.get(system, '?')})"
                                    f" for {time.monotonic() - first_failure:.0f}s ({failures} tries): "
                                    f"{' '.join(str(exc).split())[:160]}") from None
                head = None
            dead = [n for n, rec in components.items() if not proc.alive(rec)]
            if dead:
                obs["dead_components"] = dead
                break
            now_stalled = [n for n, rec in {**components, **gen.procs}.items() if proc.stalled(rec)]
            stalled_since = {n: stalled_since.get(n, now) for n in now_stalled}
            ever_stalled.update(now_stalled)
            over = [n for n, since in stalled_since.items() if now - since >= STALL_DEADLINE_S]
            if over:
                obs["stalled_components"] = over
                break
            if gen.dead():
                obs["generator_exited"] = True
                obs["generator_exit_codes"] = {n: proc.exit_code(gen.procs[n]) for n in gen.dead()}
                break
            if head is not None and head0 is None and now >= t0:
                head0, obs["window_start"], obs["window_start_unix"] = head, now, time.time()
                accepted0 = _accepted(info)
            if head is not None and head0 is not None and now >= t1:
                head1, obs["window_end"], obs["window_end_unix"] = head, now, time.time()
                accepted1 = _accepted(info)
                if accepted0 is not None and accepted1 is not None:
                    obs["accepted_in_window"] = int(accepted1 - accepted0)
                break
            if head0 is not None and head is not None:
                rate = (head.size - head0.size) / max(now - obs["window_start"], 1e-9)
                bar.update("window", now - t_start, f"{head.size - head0.size} integrated, {rate:.0f}/s")
            else:
                bar.update("warmup", now - t_start, f"tree {head.size if head else '?'}")
            time.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
        if ever_stalled and not obs.get("stalled_components"):
            obs["stalled_components"] = sorted(ever_stalled)
        if head0 is not None and head1 is not None:
            obs["window_s"] = round(obs["window_end"] - obs["window_start"], 3)
            obs["tree_size_window_start"], obs["tree_size_window_end"] = head0.size, head1.size
            obs["entries_integrated"] = head1.size - head0.size
    except RunFailed as exc:
        obs["error"] = str(exc)
    finally:
        bar.close()
        with proc.signals_deferred():  # a second Ctrl-C must not leave the generator running
            # Generator processes an interrupt caught before the Generator recorded them.
            proc.stop_strays(children_before, [rec["pid"] for rec in gen.procs.values()] if gen else [])
            if gen is not None:
                # Let the generator finish its own schedule only after a clean window: after a stall its
                # requests hang until they time out (a TesseraCT stopped at the window's end held the run ~40 s).
                gen.stop(window_completed="window_end" in obs and not obs.get("error")
                         and not obs.get("stalled_components"))
                obs["generator_exit_codes"] = obs.get("generator_exit_codes") or gen.exit_codes
                _read_generator_result(gen, obs)
            sampler.stop()
    obs["final_tree_size"] = _drain(reader, obs)
    if "tree_size_window_end" in obs and obs["final_tree_size"] is not None and not (gen and gen.finish_deadline_s):
        # Only meaningful when the load stopped at the window's end (native generators); the uniform
        # generator's SCTs are counted per second instead (accepted_in_window).
        obs["backlog_at_window_end"] = obs["final_tree_size"] - obs["tree_size_window_end"]
    obs["samples"] = sampler.export()
    status, reason = judge(obs, settings.duration)
    obs["status"], obs["reason"] = status, reason
    if status == "ok":
        obs["qps"] = round(obs["entries_integrated"] / obs["window_s"], 2)
        rates = per_interval_rates(obs["tree"], obs["window_start"], obs["window_end"], STABILITY_BUCKET_S)
        obs["stability"] = stability(rates)
        obs["sustainable"] = sustainable(obs)
        obs["resources"] = metrics.analyse(obs["samples"], list(components), list(gen.procs) if gen else [],
                                           obs["window_start"], obs["window_end"])
        if obs.get("generator_client_bound") and "client-bound" not in obs["resources"]["labels"]:
            obs["resources"]["labels"].append("client-bound")
        obs["limited_by"] = limited_by(obs)
    else:
        obs["qps"] = None
    return obs


def _read_generator_result(gen: Generator, obs: dict[str, Any]) -> None:
    """The uniform generator's own JSON: request classes, latency, its CPU; a failure there fails the run."""
    if gen.result_file is None:
        return
    result = gen.result()
    # When the run already failed for a known cause (a component died or stalled, the generator exited,
    # an error), the generator was stopped early: a missing or failed result is a consequence, and must
    # not replace the cause in the reason.
    cause_known = any(obs.get(k) for k in ("error", "dead_components", "stalled_components", "generator_exited"))
    if result is None:
        if not cause_known:
            obs["error"] = f"load generator wrote no result ({gen.result_file.name}); exit codes {gen.exit_codes}"
        return
    obs["loadgen_result"] = {k: v for k, v in result.items() if k not in ("per_second_ok", "per_second_sent")}
    if result.get("status") == "failed":
        if not cause_known:
            obs["error"] = f"load generator failed: {result.get('reason', 'no reason given')}"
        return
    if result.get("client_bound"):
        obs["generator_client_bound"] = result.get("client_bound_reasons") or ["generator reported client-bound"]
    accepted = ok_in_window(result.get("per_second_ok"), result.get("start_unix"), obs.get("window_start_unix"),
                            obs.get("window_end_unix"))
    if accepted is not None:
        obs["accepted_in_window"] = accepted


def ok_in_window(per_second: list[int] | None, start_unix: float | None, t0: float | None,
                 t1: float | None) -> int | None:
    """OK responses whose second [start+i, start+i+1) lies inside the window [t0, t1) (pure)."""
    if not per_second or start_unix is None or t0 is None or t1 is None:
        return None
    return int(sum(n for i, n in enumerate(per_second) if t0 <= start_unix + i and start_unix + i + 1 <= t1 + 0.5))


def _accepted(info: dict[str, Any]) -> float | None:
    spec = info.get("accepted_counter")
    return ctclient.read_counter(spec) if spec else None


def sustainable(obs: dict[str, Any]) -> bool:
    """False when the log accepted clearly more than it integrated (METHOD rule 1)."""
    allowance = max(config.MIN_ENTRIES, BACKLOG_TOLERANCE * obs["entries_integrated"])
    if (obs.get("backlog_at_window_end") or 0) > allowance:
        return False
    accepted = obs.get("accepted_in_window")
    return accepted is None or accepted - obs["entries_integrated"] <= allowance


def limited_by(obs: dict[str, Any]) -> str:
    labels = obs.get("resources", {}).get("labels", [])
    offered = obs.get("generator", {}).get("offered_qps") or obs["offered_qps"]
    if obs.get("qps") and obs["qps"] >= 0.95 * offered:
        return "offered rate (the log kept up; its capacity is at least this)"
    if "client-bound" in labels:
        return "load generator (client-bound)"
    if not obs.get("sustainable", True):
        return "log (backlog grew: not sustainable)"
    if obs.get("generator", {}).get("kind") == "native":
        return "log latency or the closed-loop native generator (it waits for each operation)"
    return "log"


def _drain(reader: ctclient.TreeReader, obs: dict[str, Any]) -> int | None:
    """Watch the tree after the load stopped until it is quiet; return its final size (None if unreadable)."""
    end = time.monotonic() + DRAIN_DEADLINE_S
    last_size, quiet_since = None, time.monotonic()
    while time.monotonic() < end:
        try:
            size = reader.read().size
        except (requests.RequestException, RunFailed):
            return last_size
        if size != last_size:
            last_size, quiet_since = size, time.monotonic()
        elif time.monotonic() - quiet_since >= DRAIN_QUIET_S:
            break
        time.sleep(0.5)
    return last_size


def hammer(st: dict, settings: config.Settings, run_dir: Path, *, log=print, progress: bool = True) -> dict[str, dict]:
    """Measure each requested system, one after another; a failure of one does not stop the other."""
    systems = smoke.systems_to_check(st, settings.systems)
    out = {}
    for system in systems:
        log(f"hammer {system}: {settings.loadgen} load at {settings.qps:g}/s, warmup {settings.warmup:g}s, "
            f"window {settings.duration:g}s")
        out[system] = measure(st, system, settings, run_dir, progress=progress, log=log)
        res = out[system]
        if res["status"] == "ok":
            log(f"hammer {system}: {res['qps']:.1f} entries/s integrated ({res['entries_integrated']} in "
                f"{res['window_s']:.1f}s); limited by {res['limited_by']}")
        else:
            log(f"hammer {system}: FAILED — {res['reason']}")
    return out
