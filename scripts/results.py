"""Run results: one schema-versioned JSON document per run under results/<run-id>/.

The document is written after every system (so an interrupted run leaves what it measured, marked
`interrupted`), validated against schemas/results.schema.json before every write and on every read,
and `results/latest` points at the newest run. Raw samples go to samples.json beside it.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import secrets
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import psutil
from jsonschema.exceptions import best_match
from tabulate import tabulate

from scripts import config, costs as costs_mod, metrics, paths, proc
from scripts.errors import BadInput, RunFailed

SCHEMA_VERSION = 1
SCHEMA_FILE = paths.SCHEMAS_DIR / "results.schema.json"
RESULTS_NAME = "results.json"


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def git_sha() -> dict[str, Any]:
    try:
        sha = proc.run(["git", "-C", str(paths.REPO), "rev-parse", "HEAD"], timeout=10).stdout.strip()
        dirty = bool(proc.run(["git", "-C", str(paths.REPO), "status", "--porcelain", "--untracked-files=no"],
                              timeout=10).stdout.strip())
        return {"git_sha": sha, "dirty": dirty}
    except RunFailed:
        return {"git_sha": "unknown", "dirty": None}


def machine_facts() -> dict[str, Any]:
    return {"hostname": socket.gethostname(), "os": platform.platform(), "python": platform.python_version(),
            "cpus": psutil.cpu_count() or 0, "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "cpu_model": _cpu_model()}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fingerprint(doc: dict[str, Any]) -> str:
    """What must match for two runs to be compared: settings that shape load, versions, flags, costs."""
    keep = {"settings": {k: doc["settings"].get(k) for k in ("target", "tier", "qps", "duration", "warmup", "loadgen")},
            "versions": doc["versions"], "costs_sha256": doc["costs"]["sha256"],
            "components": {n: c["flags"] for n, c in doc["components"].items()}}
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


def new_run(settings: config.Settings, st: dict[str, Any]) -> dict[str, Any]:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    price_book = costs_mod.load_costs()  # malformed costs.json: BadInput before anything runs
    doc = {
        "schema_version": SCHEMA_VERSION,
        "run_id": f"{stamp}-{secrets.token_hex(2)}",
        "status": "running",
        "started_at": utc_now(),
        "finished_at": None,
        "target": settings.target,
        "tier": settings.tier,
        "settings": settings.as_dict(),
        "harness": git_sha(),
        "versions": st.get("versions", {}),
        "machine": machine_facts(),
        "costs": {"file": "costs.json", "sha256": costs_mod.costs_digest(),
                  "currency": price_book.get("currency", "USD")},
        "components": {n: {"system": c.get("system"), "flags": c.get("flags", {})} for n, c in st["components"].items()},
        "knobs": {s: i.get("knobs", {}) for s, i in st["systems"].items()},
        # Which deployment produced the run: `down` marks this run if tearing that deployment down fails.
        "deployment": {"deployed_at": st.get("deployed_at"), "deployer_pid": st.get("deployer_pid")},
        "systems": {},
    }
    doc["fingerprint"] = fingerprint(doc)
    return doc


def run_dir(doc: dict[str, Any]) -> Path:
    return paths.RESULTS_DIR / doc["run_id"]


def check_writable() -> None:
    try:
        paths.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=paths.RESULTS_DIR, prefix=".probe-"):
            pass
    except OSError as exc:
        raise BadInput(f"results dir {paths.RESULTS_DIR} is not writable ({exc.strerror or exc})") from None


def validate(doc: Any, label: str) -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    error = best_match(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path)
        raise BadInput(f"{label}: {where + ': ' if where else ''}{error.message}")


def save(doc: dict[str, Any], *, samples: dict[str, Any] | None = None) -> Path:
    validate(doc, "results (about to be written)")
    directory = run_dir(doc)
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(directory / RESULTS_NAME, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    if samples is not None:
        write_atomic(directory / "samples.json", json.dumps(samples) + "\n")
    latest = paths.RESULTS_DIR / "latest"
    tmp = paths.RESULTS_DIR / f".latest-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(doc["run_id"])
    os.replace(tmp, latest)
    return directory / RESULTS_NAME


def write_atomic(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Write via a temp file in the same directory and rename: readers never see half a file.
    The file has `mode` from before its content is written (mkstemp creates it 0600)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w") as fh:
            if mode != 0o600:
                os.fchmod(fh.fileno(), mode)
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | Path | None = None) -> dict[str, Any]:
    if path is None:
        target = paths.RESULTS_DIR / "latest" / RESULTS_NAME
        if not target.exists():
            raise BadInput("no results yet: run `inv bench` (or `inv hammer`) first")
    else:
        target = Path(path)
        if target.is_dir():
            target = target / RESULTS_NAME
    label = str(target)
    try:
        doc = json.loads(target.read_text())
    except FileNotFoundError:
        raise BadInput(f"{label}: file not found") from None
    except (OSError, ValueError) as exc:
        raise BadInput(f"{label}: not readable JSON ({' '.join(str(exc).split())})") from None
    if isinstance(doc, dict) and doc.get("schema_version") not in (None, SCHEMA_VERSION):
        raise BadInput(f"{label}: schema_version {doc.get('schema_version')!r} is not supported "
                       f"(expected {SCHEMA_VERSION})")
    validate(doc, label)
    return doc


def copy_logs(doc: dict[str, Any], st: dict[str, Any]) -> None:
    """Keep every component log beside the results (the state dir is wiped by the next deploy)."""
    dest = run_dir(doc) / "logs"
    dest.mkdir(parents=True, exist_ok=True)
    for name, rec in st["components"].items():
        src = Path(rec.get("log", ""))
        if src.is_file():
            shutil.copyfile(src, dest / src.name)


def system_entry(obs: dict[str, Any]) -> dict[str, Any]:
    """The published part of one system's observations (raw samples go to samples.json)."""
    keep = ("status", "reason", "qps", "offered_qps", "duration_s", "warmup_s", "window_s", "start_tree_size",
            "tree_size_window_start", "tree_size_window_end", "entries_integrated", "final_tree_size",
            "backlog_at_window_end", "accepted_in_window", "sustainable", "stability", "limited_by", "generator", "generator_exit_codes",
            "resources", "smoke", "dead_components", "stalled_components", "tree", "loadgen_result", "repeats",
            "repeat_stats", "sweep")
    out = {k: obs[k] for k in keep if k in obs}
    out.setdefault("qps", None)
    out.setdefault("reason", "")
    if "generator_exit_codes" in out:
        out["generator_exit_codes"] = {k: v for k, v in out["generator_exit_codes"].items()}
    return out


def failed_entry(reason: str, **extra: Any) -> dict[str, Any]:
    return {"status": "failed", "reason": reason, "qps": None, **extra}


def finish(doc: dict[str, Any], *, interrupted: bool = False) -> dict[str, Any]:
    doc["finished_at"] = utc_now()
    statuses = [s["status"] for s in doc["systems"].values()]
    if interrupted:
        doc["status"] = "interrupted"
        for s in doc["systems"].values():
            if s["status"] == "running":
                s.update(status="interrupted", reason="interrupted before the run finished", qps=None)
    else:
        doc["status"] = "ok" if statuses and all(s == "ok" for s in statuses) else "failed"
    return doc


def mark_cleanup_failed(st: dict[str, Any], left: list[str], state_path: str) -> Path | None:
    """Issue 5 §5: the latest run of the deployment that could not be torn down keeps its results, and its
    status becomes `cleanup failed` with what is still running. None if no run belongs to that deployment."""
    latest = paths.RESULTS_DIR / "latest" / RESULTS_NAME
    if not latest.exists():
        return None
    try:
        doc = load(latest)
    except BadInput:
        return None  # a broken results file is not made worse by teardown
    mine = {"deployed_at": st.get("deployed_at"), "deployer_pid": st.get("deployer_pid")}
    if doc.get("deployment") != mine:
        return None
    doc["status"] = "cleanup failed"
    doc["cleanup"] = {"status": "cleanup failed", "still_running": list(left),
                      "pids": {n: st["components"][n].get("pid") for n in left if n in st["components"]},
                      "state_file": state_path}
    return save(doc)


def apply_metrics(doc: dict[str, Any]) -> dict[str, Any]:
    price_book = costs_mod.load_costs()
    if costs_mod.costs_digest() != doc["costs"]["sha256"]:
        doc["costs"]["note"] = "costs.json changed since the run; costs use the current file"
        doc["costs"]["sha256"] = costs_mod.costs_digest()
    return metrics.add_costs(doc, price_book)


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def summary_rows(doc: dict[str, Any]) -> list[list[str]]:
    rows = []
    order = [n for n in doc["settings"]["systems"] if n in doc["systems"]]
    for system, res in ((n, doc["systems"][n]) for n in order + sorted(set(doc["systems"]) - set(order))):
        if res["status"] != "ok":
            rows.append([system, f"{res['status']}: {res.get('reason', '')}"[:90], "—", "—", "—", "—", "—", "—"])
            continue
        cost = res.get("cost") or {}
        prov = (cost.get("provisioned") or {}).get("derived", {})
        cons = (cost.get("consumed") or {}).get("derived", {})
        rows.append([system, "ok" + ("" if res.get("sustainable", True) else " (not sustainable)"),
                     _fmt(res["qps"]), _fmt(res.get("entries_integrated")),
                     _fmt(res["resources"]["system_cpu_seconds"] / res["window_s"], 2),
                     _fmt(prov.get("usd_per_million_entries"), 4), _fmt(cons.get("usd_per_million_entries"), 4),
                     res.get("limited_by", "")])
    return rows


def summary_table(doc: dict[str, Any]) -> str:
    head = ["system", "status", "QPS (integrated)", "entries", "CPU cores", "$/1M prov.", "$/1M cons.", "limited by"]
    return (f"run {doc['run_id']} ({doc['status']}), tier {doc['tier']}, {doc['settings']['loadgen']} generator\n"
            + tabulate(summary_rows(doc), headers=head, disable_numparse=True))
