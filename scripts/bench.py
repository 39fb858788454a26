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

from scripts import config, hammer, results, smoke, state
from scripts.errors import HarnessError, Interrupted, RunFailed, cli_entry, one_line


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
            runs = []
            for attempt in range(settings.repeats):
                if settings.repeats > 1:
                    log(f"{system}: repeat {attempt + 1} of {settings.repeats}")
                runs.append(hammer.hammer(st, one, results.run_dir(doc), log=log, progress=progress)[system])
                if runs[-1]["status"] != "ok":
                    break
            obs = combine_repeats(runs, settings.repeats)
            entry = results.system_entry(obs)
            if sm is not None:
                entry["smoke"] = {k: v for k, v in sm.items() if k != "ok"}
            doc["systems"][system] = entry
            samples[system] = obs.get("samples", {})
            results.save(doc, samples=samples)
    except (KeyboardInterrupt, Interrupted):
        results.finish(doc, interrupted=True)
        results.save(doc, samples=samples)
        results.copy_logs(doc, st)
        raise
    results.copy_logs(doc, st)
    results.finish(doc)
    results.save(doc, samples=samples)
    return doc


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


def metrics_phase(doc: dict[str, Any] | None = None, *, log=print) -> dict[str, Any]:
    doc = doc if doc is not None else results.load()
    doc = results.apply_metrics(doc)
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
