"""Render results into the README block and the pull-request body, from the results JSON only.

`view_model` (pure) turns a validated results document into display strings; Jinja templates in
templates/ (StrictUndefined: an unknown name is an error) lay them out. The README is changed only
between its markers, atomically, and only after rendering succeeded; a failed system renders as failed
with its reason, never as a number.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import jinja2

from scripts import paths, results
from scripts.errors import BadInput, cli_entry

START = "<!-- BENCHMARK-RESULTS-START -->"
END = "<!-- BENCHMARK-RESULTS-END -->"
README_TEMPLATE = "readme_results.md.j2"
PR_TEMPLATE = "pr_body.md.j2"
PR_BODY_NAME = "pr_body.md"


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(paths.TEMPLATES_DIR)),
                              undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True,
                              trim_blocks=False, lstrip_blocks=False)


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def _usd(value: Any) -> str:
    return "—" if value is None else f"{value:.4f}"


def _cell(text: str) -> str:
    """Make free text safe inside a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _items(items: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"item": _cell(i["item"]), "quantity": f"{i['quantity']:g}", "unit": _cell(i["unit"]),
             "rate": f"{i['rate_usd']:.6g}", "share": f"{i['share']:g}", "usd_h": f"{i['usd_per_hour']:.6f}"}
            for i in items]


def _repeats_text(stats: dict[str, Any] | None) -> str:
    if not stats:
        return ""
    cov = "—" if stats.get("cov") is None else f"{stats['cov']:.3f}"
    return f" (median of {stats['n']}: {stats['min_qps']:.1f}–{stats['max_qps']:.1f}, CoV {cov})"


def _system_view(name: str, res: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    cost = res.get("cost") or {}
    prov = cost.get("provisioned") or {}
    view: dict[str, Any] = {"name": name, "ok": res["status"] == "ok", "status": res["status"],
                            "reason": _cell(res.get("reason", "")),
                            "offered": _num(res.get("generator", {}).get("offered_qps", res.get("offered_qps"))),
                            "prov_usd_h": _usd(prov.get("usd_per_hour"))}
    if not view["ok"]:
        return view
    cons = cost.get("consumed") or {}
    pd, cd = prov.get("derived", {}), cons.get("derived", {})
    resources = res["resources"]
    stab = res.get("stability") or {}
    flags = []
    if res.get("sustainable") is False:
        flags.append("not sustainable")
    if stab.get("unstable"):
        flags.append("unstable")
    flags += [l for l in resources.get("labels", []) if l not in flags]
    view.update({
        "flags": f" ({', '.join(flags)})" if flags else "",
        "qps": _num(res["qps"]) + _repeats_text(res.get("repeat_stats")), "entries": _num(res["entries_integrated"]),
        "limited_by": _cell(res.get("limited_by", "")),
        "cores": _num(resources["system_cpu_seconds"] / res["window_s"], 2),
        "entries_per_cpu_s": _num(pd.get("entries_per_cpu_second"), 1),
        "prov_per_million": _usd(pd.get("usd_per_million_entries")),
        "cons_usd_h": _usd(cons.get("usd_per_hour")),
        "cons_per_million": _usd(cd.get("usd_per_million_entries")),
        "tree_start": res["tree_size_window_start"], "tree_end": res["tree_size_window_end"],
        "window_s": f"{res['window_s']:.2f}", "final_tree": _num(res.get("final_tree_size")),
        "backlog": _num(res.get("backlog_at_window_end")),
        "accepted_text": (f" The log issued {_num(res['accepted_in_window'])} SCTs in the window (server-side count)."
                          if res.get("accepted_in_window") is not None else ""),
        "sustainable_text": "sustainable" if res.get("sustainable", True) else "NOT sustainable: accepted ≫ integrated",
        "buckets": stab.get("buckets", 0), "bucket_s": f"{stab.get('bucket_s', 0):g}",
        "cov": "—" if stab.get("cov") is None else f"{stab['cov']:.3f}",
        "unstable_text": " (unstable: above 0.10)" if stab.get("unstable") else "",
        "generator": _cell(res["generator"]["description"]),
        "gen_cores": _num(resources["generator"]["cores"], 2),
        "client_text": " — **client-bound**: the generator, not the log, was the limit" if "client-bound" in resources.get("labels", []) else "",
        "machine_share": "—" if resources.get("machine_cpu_share") is None else f"{resources['machine_cpu_share']:.0%}",
        "components": [{"name": n, "cpu_s": _num(c["cpu_seconds"], 1), "cores": _num(c["cores"], 2),
                        "rss_mean": _num(c["rss_mean_mib"], 0), "rss_peak": _num(c["rss_peak_mib"], 0)}
                       for n, c in resources["components"].items()],
        "epc_math": _cell(pd.get("math", {}).get("entries_per_cpu_second", "—")),
        "prov_items": _items(prov.get("items", [])), "cons_items": _items(cons.get("items", [])),
        "prov_math": _cell(pd.get("math", {}).get("usd_per_million_entries", "—")),
        "prov_qps_math": _cell(pd.get("math", {}).get("qps_per_usd_hour", "—")),
        "cons_math": _cell(cd.get("math", {}).get("usd_per_million_entries", "—")),
        "cons_qps_math": _cell(cd.get("math", {}).get("qps_per_usd_hour", "—")),
    })
    return view


def view_model(doc: dict[str, Any]) -> dict[str, Any]:
    s = doc["settings"]
    m = doc["machine"]
    native = s["loadgen"] == "native"
    run = {
        "run_id": doc["run_id"], "status": doc["status"], "target": doc["target"], "tier": doc["tier"],
        "started_at": doc["started_at"], "finished_at": doc["finished_at"] or "—",
        "qps": f"{s['qps']:g}", "warmup": f"{s['warmup']:g}", "duration": f"{s['duration']:g}",
        "loadgen_text": "upstream hammers (native)" if native else "the project's uniform open-loop generator",
        "native": native, "local": doc["target"] == "local", "cpus": m.get("cpus", "?"),
        "machine_text": _cell(f"{m.get('cpus', '?')} CPUs ({m.get('cpu_model', '?')}), {m.get('memory_gib', '?')} GiB, {m.get('os', '?')}"),
        "versions_text": ", ".join(f"{k.split('/')[-1]} {v}" for k, v in sorted(doc["versions"].items())) or "—",
        "git_sha": doc["harness"]["git_sha"][:12], "dirty_text": " (uncommitted changes)" if doc["harness"].get("dirty") else "",
        "costs_sha": doc["costs"]["sha256"][:12], "fingerprint": doc["fingerprint"],
        "schema_version": doc["schema_version"],
        "cleanup_text": (f" — still running after teardown: {_cell(', '.join(doc['cleanup']['still_running']))}"
                         if doc.get("cleanup") else ""),
    }
    order = [n for n in s["systems"] if n in doc["systems"]] + sorted(n for n in doc["systems"] if n not in s["systems"])
    systems = [_system_view(n, doc["systems"][n], doc) for n in order]
    sweeps = []
    for n in order:
        sw = doc["systems"][n].get("sweep")
        if not sw:
            continue
        sweeps.append({"name": n, "mode": sw.get("mode", ""), "stopped": _cell(sw.get("stopped", "")),
                       "max": _num(sw.get("max_sustainable_qps")),
                       "steps": [{"offered": _num(st.get("offered")), "integrated": _num(st.get("integrated_qps")),
                                  "sustained": "yes" if st.get("sustained") else "no",
                                  "why": _cell("; ".join(st.get("reasons") or []) or st.get("reason") or "—"),
                                  "p99": _num(((st.get("latency_ms") or {}).get("p99")), 1)}
                                 for st in sw.get("steps", [])]})
    charts = [{"title": name.replace("_", " "), "file": f} for name, files in sorted((doc.get("charts") or {}).items())
              for f in files if f.endswith(".png")]
    components = [{"name": n, "flags": " ".join(f"--{k}={v}" for k, v in sorted(c["flags"].items())).replace("`", "'")}
                  for n, c in sorted(doc["components"].items())]
    return {"run": run, "systems": systems, "components": components, "sweeps": sweeps, "charts": charts}


def chart_dir(doc: dict[str, Any], readme: Path | None = None) -> str:
    """Where the run's chart files are, relative to the README (for image links)."""
    base = (readme or paths.README).parent
    return os.path.relpath(results.run_dir(doc), base)


def render(template: str, doc: dict[str, Any], *, chart_prefix: str | None = None) -> str:
    try:
        model = view_model(doc)
    except KeyError as exc:
        # The schema lets through documents the view still cannot show (e.g. an ok system without its tree
        # sizes): a bad results file, one line, not a traceback.
        raise BadInput(f"results {doc.get('run_id', '?')}: required field {exc} is missing") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise BadInput(f"results {doc.get('run_id', '?')}: a field has the wrong type ({exc})") from None
    try:
        model["chart_prefix"] = chart_prefix if chart_prefix is not None else f"results/{doc['run_id']}"
        return _env().get_template(template).render(**model)
    except jinja2.UndefinedError as exc:
        raise BadInput(f"template {template}: {exc}") from None
    except jinja2.TemplateError as exc:
        raise BadInput(f"template {template}: {exc}") from None


def splice(readme: str, block: str) -> str:
    """Replace what is between the markers (pure); BadInput if they are missing or out of order."""
    start, end = readme.find(START), readme.find(END)
    if start < 0 or end < 0 or end < start or readme.count(START) != 1 or readme.count(END) != 1:
        raise BadInput(f"README.md must contain exactly one {START} followed by one {END}")
    return readme[: start + len(START)] + "\n" + block.strip() + "\n" + readme[end:]


def update_readme(doc: dict[str, Any], readme: Path | None = None) -> Path:
    readme = readme or paths.README
    try:
        current = readme.read_text()
    except OSError as exc:
        raise BadInput(f"cannot read {readme} ({exc.strerror or exc})") from None
    new = splice(current, render(README_TEMPLATE, doc, chart_prefix=chart_dir(doc, readme)))
    if new != current:
        results.write_atomic(readme, new, mode=0o644)
    return readme


def write_pr_body(doc: dict[str, Any]) -> Path:
    body = render(PR_TEMPLATE, doc)
    path = results.run_dir(doc) / PR_BODY_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    results.write_atomic(path, body, mode=0o644)
    return path


def report(doc: dict[str, Any] | None = None, *, results_path: str | None = None, readme: Path | None = None,
           log=print) -> dict[str, Path]:
    doc = doc if doc is not None else results.load(results_path)
    # Render both before writing either, so a template error leaves everything as it was.
    render(PR_TEMPLATE, doc)
    render(README_TEMPLATE, doc)
    out = {"readme": update_readme(doc, readme), "pr_body": write_pr_body(doc)}
    log(f"report: README block updated ({out['readme']}); PR body {out['pr_body']}")
    return out


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.update_readme", description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=None, help="results JSON or run dir (default: results/latest)")
    parser.add_argument("--pr-body", action="store_true", help="also write the PR body into the run dir")
    args = parser.parse_args(argv)
    doc = results.load(args.results)
    if args.pr_body:
        report(doc)
    else:
        print(f"README updated: {update_readme(doc)}")
    return 0


if __name__ == "__main__":
    main()
