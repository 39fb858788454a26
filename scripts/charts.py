"""Charts for the README and PR body (issue 4): PNG + SVG, from plain dicts, no pyplot global state.

- `qps_vs_offered`: integrated QPS against offered rate per system, with the y = x line; sustained
  steps filled, unsustained hollow; each system's maximum sustainable QPS as a dotted line.
- `latency_vs_offered`: add-chain latency percentiles (from the intended send time) against offered
  rate per system, log scale (TesseraCT's publication awaiter puts it ~100x above Trillian by design).
- `cost_vs_throughput`: $ per 1M integrated entries against throughput, per system and tier.

Input shapes (None values are skipped, so a step without OK responses simply has no latency point):

    steps = {"trillian": [{"offered": 100, "integrated_qps": 98.2, "sustained": True,
                           "latency_ms": {"p50": 8.1, "p99": 30.2}}, ...], "tesseract": [...]}
    maxima = {"trillian": 480.0, "tesseract": 1510.0}
    costs = [{"system": "trillian", "tier": "small", "qps": 480.0, "usd_per_million": 0.21}, ...]
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from scripts.errors import BadInput  # noqa: E402

FORMATS = ("png", "svg")
PERCENTILES = ("p50", "p90", "p99")
LINESTYLES = {"p50": "-", "p90": "--", "p99": ":", "p99_9": "-."}
COLORS = {"trillian": "#1f77b4", "tesseract": "#d62728"}
FALLBACK_COLORS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
RC = {"svg.hashsalt": "ctbench", "svg.fonttype": "none", "font.size": 10}


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadInput(f"chart data: expected a number, got {value!r}")
    return float(value)


def _color(system: str, index: int) -> str:
    return COLORS.get(system, FALLBACK_COLORS[index % len(FALLBACK_COLORS)])


def _check_steps(steps: Mapping[str, Sequence[Mapping]]) -> None:
    if not isinstance(steps, Mapping) or not steps:
        raise BadInput("chart data: need at least one system with steps")
    for system, points in steps.items():
        if not isinstance(points, Sequence) or isinstance(points, (str, bytes)):
            raise BadInput(f"chart data for {system}: need a list of steps")
        for p in points:
            if not isinstance(p, Mapping) or _num(p.get("offered")) is None:
                raise BadInput(f"chart data for {system}: every step needs a numeric 'offered'")


def _save(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in FORMATS:
        path = out_dir / f"{stem}.{fmt}"
        # No timestamps or tool versions in the files: same data, same bytes (SVG), reviewable diffs.
        meta = {"Date": None, "Creator": None} if fmt == "svg" else {"Software": None}
        fig.savefig(path, format=fmt, dpi=120, bbox_inches="tight", metadata=meta)
        written.append(path)
    return written


def _figure() -> Figure:
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(7, 4.5))
    return fig


def _maybe_log_x(ax, offered: Iterable[float]) -> None:
    values = [v for v in offered if v and v > 0]
    if values and max(values) / min(values) > 20:
        ax.set_xscale("log")


def qps_vs_offered(steps: Mapping[str, Sequence[Mapping]], out_dir: Path, *,
                   maxima: Mapping[str, float | None] | None = None, title: str | None = None,
                   stem: str = "qps_vs_offered") -> list[Path]:
    _check_steps(steps)
    with matplotlib.rc_context(RC):
        fig = _figure()
        ax = fig.add_subplot()
        plotted, all_offered = 0, []
        for i, (system, points) in enumerate(sorted(steps.items())):
            pts = sorted(((_num(p["offered"]), _num(p.get("integrated_qps")), p.get("sustained"))
                          for p in points), key=lambda t: t[0])
            pts = [t for t in pts if t[1] is not None]
            if not pts:
                continue
            color = _color(system, i)
            xs, ys = [t[0] for t in pts], [t[1] for t in pts]
            all_offered += xs
            ax.plot(xs, ys, "-", color=color, label=system, linewidth=1.5)
            ax.scatter([t[0] for t in pts if t[2] is not False], [t[1] for t in pts if t[2] is not False],
                       color=color, zorder=3, s=28)
            ax.scatter([t[0] for t in pts if t[2] is False], [t[1] for t in pts if t[2] is False],
                       facecolors="white", edgecolors=color, zorder=3, s=28)
            best = _num((maxima or {}).get(system))
            if best is not None:
                ax.axhline(best, color=color, linestyle=":", linewidth=1)
                ax.text(0.99, best, f"{system} max {best:,.0f}/s ", transform=ax.get_yaxis_transform(),
                        ha="right", va="bottom", color=color, fontsize=8)
            plotted += 1
        if not plotted:
            raise BadInput("chart data: no integrated QPS to plot")
        top = max(all_offered)
        ax.plot([0, top], [0, top], linestyle="--", color="grey", linewidth=1, label="integrated = offered")
        _maybe_log_x(ax, all_offered)
        ax.set_xlabel("offered add-chain rate (/s)")
        ax.set_ylabel("integrated QPS (signed tree growth /s)")
        ax.set_title(title or "Integrated QPS vs offered rate (hollow: not sustained)")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
        return _save(fig, out_dir, stem)


def latency_vs_offered(steps: Mapping[str, Sequence[Mapping]], out_dir: Path, *,
                       percentiles: Sequence[str] = PERCENTILES, key: str = "latency_ms",
                       title: str | None = None, stem: str = "latency_vs_offered") -> list[Path]:
    _check_steps(steps)
    with matplotlib.rc_context(RC):
        fig = _figure()
        ax = fig.add_subplot()
        plotted, all_offered = 0, []
        for i, (system, points) in enumerate(sorted(steps.items())):
            color = _color(system, i)
            for pct in percentiles:
                pts = []
                for p in points:
                    lat = p.get(key) or {}
                    if not isinstance(lat, Mapping):
                        raise BadInput(f"chart data for {system}: {key!r} must be a mapping of percentiles")
                    y = _num(lat.get(pct))
                    if y is not None and y > 0:
                        pts.append((_num(p["offered"]), y))
                if not pts:
                    continue
                pts.sort()
                all_offered += [x for x, _ in pts]
                ax.plot([x for x, _ in pts], [y for _, y in pts], LINESTYLES.get(pct, "-"), marker="o",
                        markersize=3, color=color, label=f"{system} {pct.replace('_', '.')}")
                plotted += 1
        if not plotted:
            raise BadInput("chart data: no latency percentiles to plot")
        ax.set_yscale("log")
        _maybe_log_x(ax, all_offered)
        ax.set_xlabel("offered add-chain rate (/s)")
        ax.set_ylabel("add-chain latency from intended send (ms, log)")
        ax.set_title(title or "Latency percentiles vs offered rate")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, ncol=2)
        return _save(fig, out_dir, stem)


def cost_vs_throughput(costs: Sequence[Mapping], out_dir: Path, *, title: str | None = None,
                       stem: str = "cost_vs_throughput") -> list[Path]:
    if not isinstance(costs, Sequence) or not costs:
        raise BadInput("chart data: need at least one cost point")
    with matplotlib.rc_context(RC):
        fig = _figure()
        ax = fig.add_subplot()
        systems = sorted({str(c.get("system")) for c in costs})
        plotted = 0
        for i, system in enumerate(systems):
            pts = []
            for c in costs:
                if str(c.get("system")) != system:
                    continue
                x, y = _num(c.get("qps")), _num(c.get("usd_per_million"))
                if x is not None and y is not None:
                    pts.append((x, y, str(c.get("tier", ""))))
            if not pts:
                continue
            pts.sort()
            color = _color(system, i)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "-o", color=color, label=system, markersize=5)
            for x, y, tier in pts:
                if tier:
                    ax.annotate(tier, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8, color=color)
            plotted += 1
        if not plotted:
            raise BadInput("chart data: no (qps, $/1M) points to plot")
        ax.set_xlabel("maximum sustainable integrated QPS")
        ax.set_ylabel("$ per 1M integrated entries")
        ax.set_title(title or "Cost per million entries vs throughput")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        return _save(fig, out_dir, stem)


def render_all(out_dir: Path, *, steps: Mapping[str, Sequence[Mapping]] | None = None,
               maxima: Mapping[str, float | None] | None = None,
               costs: Sequence[Mapping] | None = None) -> dict[str, list[str]]:
    """Every chart the data allows; returns {chart name: [file paths]} (relative names for templates)."""
    written: dict[str, list[Path]] = {}
    if steps:
        written["qps_vs_offered"] = qps_vs_offered(steps, out_dir, maxima=maxima)
        if any((p.get("latency_ms") or {}).get("p50") is not None for pts in steps.values() for p in pts):
            written["latency_vs_offered"] = latency_vs_offered(steps, out_dir)
    if costs:
        written["cost_vs_throughput"] = cost_vs_throughput(costs, out_dir)
    return {name: [p.name for p in paths] for name, paths in written.items()}
