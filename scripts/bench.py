"""The benchmark phases and their composition: smoke -> hammer -> metrics, writing results/<run-id>/.

`hammer_phase` starts a new run document and measures each system in turn, saving after each one;
`metrics_phase` adds resource figures and costs to a run (the latest by default) and closes it.
A system whose smoke test fails is recorded as failed and not hammered; the other system still runs.
An interrupt marks the run `interrupted` and keeps what was measured.
"""
from __future__ import annotations

import argparse
import statistics
from typing import Any

from scripts import charts, config, hammer, results, smoke, state, sweep
from scripts.errors import Interrupted, RunFailed, cli_entry, one_line


def smoke_phase(settings: config.Settings, *, log=print) -> dict[str, dict]:
    """Smoke every requested system; failures are returned (as reasons), not raised."""
    st = state.load()
    out: dict[str, dict] = {}
    for system in smoke.systems_to_check(st, settings.systems):
        try:
            out[system] = {"ok": True, **smoke.smoke_system(st, system, log=log)}
        except RunFailed as exc:
            log(f"smoke {system}: FAILED — {one_line(exc)}")
            out[system] = {"ok": False, "reason": f"smoke failed: {one_line(exc)}"}
    return out


def record_system(doc: dict[str, Any], samples: dict[str, Any], system: str, obs: dict[str, Any],
                  smoke_result: dict | None) -> None:
    """Publish one system's observations (with its smoke result) into the run and save it."""
    entry = results.system_entry(obs)
    if smoke_result is not None:
        entry["smoke"] = {k: v for k, v in smoke_result.items() if k != "ok"}
    doc["systems"][system] = entry
    samples[system] = obs.get("samples", {})
    results.save(doc, samples=samples)


def hammer_phase(settings: config.Settings, *, smoke_results: dict[str, dict] | None = None, log=print,
                 progress: bool = True) -> dict[str, Any]:
    results.check_writable()
    st = state.load()
    systems = smoke.systems_to_check(st, settings.systems)
    doc = results.new_run(settings, st)
    samples: dict[str, Any] = {}
    results.save(doc)
    log(f"run {doc['run_id']}: results in {results.run_dir(doc)}")
    try:
        for system in systems:
            sm = (smoke_results or {}).get(system)
            if sm is not None and not sm["ok"]:
                doc["systems"][system] = results.failed_entry(sm["reason"])
                results.save(doc)
                continue
            doc["systems"][system] = {"status": "running", "reason": "", "qps": None}
            one = config.Settings(**{**settings.__dict__, "systems": (system,)})
            if settings.find_max or settings.qps_levels:
                entry = sweep_system(st, system, one, results.run_dir(doc), log=log, progress=progress,
                                     samples=samples)
                if sm is not None:
                    entry["smoke"] = {k: v for k, v in sm.items() if k != "ok"}
                doc["systems"][system] = entry
                results.save(doc, samples=samples)
                continue
            runs = []
            for attempt in range(settings.repeats):
                if settings.repeats > 1:
                    log(f"{system}: repeat {attempt + 1} of {settings.repeats}")
                runs.append(hammer.hammer(st, one, results.run_dir(doc), log=log, progress=progress)[system])
                if runs[-1]["status"] != "ok":
                    break
            record_system(doc, samples, system, combine_repeats(runs, settings.repeats), sm)
    except (KeyboardInterrupt, Interrupted):
        results.finish(doc, interrupted=True)
        results.save(doc, samples=samples)
        results.copy_logs(doc, st)
        raise
    results.copy_logs(doc, st)
    results.finish(doc)
    results.save(doc, samples=samples)
    return doc


def step_of(obs: dict[str, Any]) -> dict[str, Any]:
    """One sweep step as scripts.sweep expects it, from a measured run (pure)."""
    lr = obs.get("loadgen_result") or {}
    window = obs.get("window_s") or 0.0
    accepted, integrated = obs.get("accepted_in_window"), obs.get("entries_integrated")
    backlog = 0.0
    if accepted is not None and integrated is not None and window > 0:
        backlog = max(0.0, (accepted - integrated) / window)
    elif obs.get("backlog_at_window_end") and window > 0:
        backlog = max(0.0, obs["backlog_at_window_end"] / window)
    return {"offered": float(obs["offered_qps"]), "integrated_qps": float(obs.get("qps") or 0.0),
            "error_rate": float(lr.get("error_rate") or 0.0), "backlog_growth_per_s": round(backlog, 3),
            # The generator's schedule lag matters only when the log fell short of the offered rate:
            # a log that integrated >= 95 % of it kept up, however late some sends were.
            "client_bound": ("client-bound" in (obs.get("resources") or {}).get("labels", [])
                             and float(obs.get("qps") or 0.0) < sweep.QPS_RATIO * float(obs["offered_qps"])),
            "status": obs["status"], "reason": obs.get("reason", ""),
            "latency_ms": lr.get("latency_ms"), "service_ms": lr.get("service_ms"),
            "cpu_cores": (obs.get("resources") or {}).get("system_cpu_seconds", 0.0) / window if window else None}


def sweep_system(st: dict, system: str, settings: config.Settings, run_dir, *, log=print, progress: bool = True,
                 samples: dict | None = None) -> dict[str, Any]:
    """--qps-levels or --find-max for one system: a measured run per offered rate.

    The system's entry is the run at the highest sustained rate, plus every step as evidence. A step
    that did not really run (component died, generator crashed) fails the system: a search over a
    broken stack has no maximum.
    """
    plan = sweep.SearchPlan(start=settings.qps)
    history: list[dict[str, Any]] = []
    by_rate: dict[float, dict[str, Any]] = {}
    levels = list(settings.qps_levels)
    while True:
        rate = (levels.pop(0) if levels else None) if settings.qps_levels else sweep.next_rate(history, plan)
        if rate is None:
            break
        step_settings = config.Settings(**{**settings.__dict__, "qps": rate})
        log(f"{system}: step {len(history) + 1} at {rate:g}/s")
        obs = hammer.hammer(st, step_settings, run_dir, log=log, progress=progress)[system]
        if samples is not None:
            samples[f"{system}@{rate:g}"] = obs.get("samples", {})
        step = step_of(obs)
        history.append(step)
        by_rate[rate] = obs
        if obs["status"] != "ok" and not obs.get("entries_integrated"):
            break
    failed = [s for s in history if s["status"] != "ok" and "only" not in s["reason"]]
    summary = sweep.search_summary([{k: v for k, v in s.items()} for s in history], plan) if history else None
    if failed:
        entry = results.failed_entry(f"step at {failed[0]['offered']:g}/s: {failed[0]['reason']}")
    elif summary is None or summary["offered_at_max"] is None:
        entry = results.failed_entry("no offered rate was sustained"
                                     + (f" ({summary['steps'][0]['reasons'][0]})" if summary and summary["steps"] and summary["steps"][0]["reasons"] else ""))
    else:
        entry = results.system_entry(by_rate[summary["offered_at_max"]])
    entry["sweep"] = {"mode": "find-max" if settings.find_max and not settings.qps_levels else "levels",
                      **(summary or {"steps": []})}
    return entry


def combine_repeats(runs: list[dict[str, Any]], wanted: int) -> dict[str, Any]:
    """One system's result from its repeats (pure): the median run's figures plus the spread.

    Any failed repeat fails the system (a number that only sometimes holds is not sustained).
    """
    if wanted == 1:
        return runs[0]
    summary = [{"qps": r.get("qps"), "status": r["status"], "reason": r.get("reason", ""),
                "entries_integrated": r.get("entries_integrated"), "window_s": r.get("window_s")} for r in runs]
    failed = [(i, r) for i, r in enumerate(runs) if r["status"] != "ok"]
    if failed:
        i, r = failed[0]
        out = dict(r)
        out["reason"] = f"repeat {i + 1} of {wanted} failed: {r['reason']}"
    else:
        ordered = sorted(runs, key=lambda r: r["qps"])
        out = dict(ordered[(len(ordered) - 1) // 2])  # the median run (lower median for even counts)
        rates = [r["qps"] for r in runs]
        mean = statistics.fmean(rates)
        out["repeat_stats"] = {"n": len(rates), "median_qps": statistics.median(rates), "min_qps": min(rates),
                               "max_qps": max(rates),
                               "cov": round(statistics.pstdev(rates) / mean, 4) if mean > 0 else None}
    out["repeats"] = summary
    return out


def chart_inputs(doc: dict[str, Any]) -> tuple[dict, dict, list]:
    """(steps per system, maxima, cost points) for scripts.charts, from a results document (pure)."""
    steps = {s: r["sweep"]["steps"] for s, r in doc["systems"].items() if (r.get("sweep") or {}).get("steps")}
    maxima = {s: r["sweep"].get("max_sustainable_qps") for s, r in doc["systems"].items() if s in steps}
    cost_points = []
    for s, r in doc["systems"].items():
        derived = (((r.get("cost") or {}).get("provisioned") or {}).get("derived") or {})
        if s in steps and r["status"] == "ok" and derived.get("usd_per_million_entries") is not None:
            cost_points.append({"system": s, "tier": doc["tier"], "qps": r["qps"],
                                "usd_per_million": derived["usd_per_million_entries"]})
    return steps, maxima, cost_points


def render_charts(doc: dict[str, Any]) -> dict[str, list[str]]:
    steps, maxima, cost_points = chart_inputs(doc)
    if not steps:
        return {}
    return charts.render_all(results.run_dir(doc), steps=steps, maxima=maxima, costs=cost_points or None)


def metrics_phase(doc: dict[str, Any] | None = None, *, log=print) -> dict[str, Any]:
    doc = doc if doc is not None else results.load()
    doc = results.apply_metrics(doc)
    doc["charts"] = render_charts(doc)
    if doc["status"] == "running":
        results.finish(doc)
    results.save(doc)
    log(results.summary_table(doc))
    return doc


def bench(settings: config.Settings, *, log=print, progress: bool = True) -> dict[str, Any]:
    smoke_results = smoke_phase(settings, log=log)
    doc = hammer_phase(settings, smoke_results=smoke_results, log=log, progress=progress)
    return metrics_phase(doc, log=log)


def check_status(doc: dict[str, Any]) -> None:
    failed = [f"{s}: {r.get('reason', '')}" for s, r in doc["systems"].items() if r["status"] != "ok"]
    if doc.get("status") == "cleanup failed":
        failed.append(f"cleanup failed, still running: {', '.join(doc['cleanup']['still_running'])}")
    if failed:
        raise RunFailed(f"run {doc['run_id']}: {len(failed)} system(s) failed — " + "; ".join(failed))


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench", description=__doc__.splitlines()[0])
    for flag in ("systems", "qps", "duration", "warmup", "loadgen", "tier"):
        parser.add_argument(f"--{flag}", default=None, help=f"default {config.DEFAULTS[flag]}")
    args = parser.parse_args(argv)
    settings = config.settings(**vars(args))
    doc = bench(settings)
    check_status(doc)
    return 0


if __name__ == "__main__":
    main()
