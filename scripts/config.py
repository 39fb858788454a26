"""Run settings: the defaults are declared once here, and every flag value is validated here.

invoke layers `invoke.yaml`, `INVOKE_BENCH_*` env vars and CLI flags over DEFAULTS (tasks.py
passes DEFAULTS as the `bench` config namespace); `python -m scripts.x` entry points use the same
DEFAULTS through `argparse`. Validation is pure: it takes plain values and returns a Settings or
raises BadInput with one line naming the flag.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from scripts.errors import BadInput

TARGETS = ("local", "gke", "ssh")
SYSTEMS = ("trillian", "tesseract")
TIERS = ("small", "medium", "large")
LOADGENS = ("native", "uniform")

DEFAULTS: dict[str, Any] = {
    "target": "local",
    "systems": "trillian,tesseract",
    "tier": "small",
    "qps": 200,              # offered write rate per system (entries/s)
    "duration": 60,          # measured window, seconds
    "warmup": 10,            # seconds of load before the window; not measured
    "loadgen": "uniform",    # the project's open-loop generator (same work for both logs); "native" = upstream hammers
    "max_in_flight": 1000,   # cap on outstanding requests for the uniform generator
    "repeats": 1,
    "host": "",              # ssh target: user@host
    "loadgen_host": "",      # ssh target: where the load generator runs ("" = here)
    "project": "",           # gke target: Google Cloud project id
    "region": "us-central1",
    "dry_run": False,
    "find_max": False,       # saturation search per system (bench --find-max)
    "qps_levels": "",        # sweep: "50,100,200" or "auto" (0.5x, 1x, 2x, 4x --qps)
}

# Bounds that catch typos (qps=2e9, duration=-5) without forbidding real experiments.
LIMITS = {
    "qps": (1, 100_000),
    "qps_levels": (1, 100_000),
    "duration": (5, 24 * 3600),
    "warmup": (0, 3600),
    "max_in_flight": (1, 100_000),
    "repeats": (1, 100),
}
# Minimum evidence for a published number (METHOD rule 2).
MIN_WINDOW_FRACTION = 0.9    # the window must really have lasted this share of --duration
MIN_ENTRIES = 10             # fewer integrated entries than this is not a measurement


@dataclass(frozen=True)
class Settings:
    target: str = DEFAULTS["target"]
    systems: tuple[str, ...] = tuple(DEFAULTS["systems"].split(","))
    tier: str = DEFAULTS["tier"]
    qps: float = DEFAULTS["qps"]
    duration: float = DEFAULTS["duration"]
    warmup: float = DEFAULTS["warmup"]
    loadgen: str = DEFAULTS["loadgen"]
    max_in_flight: int = DEFAULTS["max_in_flight"]
    repeats: int = DEFAULTS["repeats"]
    host: str = ""
    loadgen_host: str = ""
    project: str = ""
    region: str = DEFAULTS["region"]
    dry_run: bool = False
    find_max: bool = False
    qps_levels: tuple[float, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["systems"] = list(self.systems)
        return out


def _choice(flag: str, value: Any, allowed: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in allowed:
        raise BadInput(f"--{flag}: unknown value {value!r} (choose from {', '.join(allowed)})")
    return text


def parse_tiers(value: Any) -> list[str]:
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    tiers = []
    for raw in items:
        name = str(raw).strip().lower()
        if name and name not in tiers:
            tiers.append(_choice("tiers", name, TIERS))
    if not tiers:
        raise BadInput("--tiers: no tier named (choose from small, medium, large)")
    return tiers


def parse_systems(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    systems: list[str] = []
    for raw in items:
        name = str(raw).strip().lower()
        if not name:
            continue
        if name not in SYSTEMS:
            raise BadInput(f"--systems: unknown system {raw!r} (choose from {', '.join(SYSTEMS)})")
        if name not in systems:
            systems.append(name)
    if not systems:
        raise BadInput("--systems: no system named (choose from trillian, tesseract)")
    return tuple(systems)


def number(flag: str, value: Any, *, integer: bool = False) -> float | int:
    if isinstance(value, bool):
        raise BadInput(f"--{flag}: expected a number, got {value!r}")
    try:
        num = float(str(value).strip()) if not isinstance(value, (int, float)) else float(value)
    except ValueError:
        raise BadInput(f"--{flag}: expected a number, got {value!r}") from None
    if not math.isfinite(num):
        raise BadInput(f"--{flag}: expected a finite number, got {value!r}")
    low, high = LIMITS[flag.replace("-", "_")]
    if num < low or num > high:
        raise BadInput(f"--{flag}: {value!r} is out of range ({low}..{high})")
    if integer:
        if num != int(num):
            raise BadInput(f"--{flag}: expected a whole number, got {value!r}")
        return int(num)
    return num


AUTO_LEVELS = (0.5, 1.0, 2.0, 4.0)
MAX_LEVELS = 20


def parse_levels(value: Any, qps: float) -> tuple[float, ...]:
    """--qps-levels: '' (none), 'auto' (multiples of --qps) or a comma-separated list of rates."""
    if value in (None, "", ()):
        return ()
    if isinstance(value, str) and value.strip().lower() == "auto":
        return tuple(sorted({min(LIMITS["qps"][1], max(1.0, round(qps * f, 1))) for f in AUTO_LEVELS}))
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    levels = sorted({float(number("qps-levels", item)) for item in items if str(item).strip()})
    if not levels:
        raise BadInput("--qps-levels: no rate given (e.g. 50,100,200 or auto)")
    if len(levels) > MAX_LEVELS:
        raise BadInput(f"--qps-levels: {len(levels)} levels is too many (at most {MAX_LEVELS})")
    return tuple(levels)


def _as_bool(flag: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise BadInput(f"--{flag}: expected true or false, got {value!r}")


def settings(values: dict[str, Any] | None = None, **overrides: Any) -> Settings:
    """DEFAULTS, then `values` (e.g. invoke's config namespace), then non-None `overrides` (flags)."""
    merged = dict(DEFAULTS)
    for source in (values or {}), overrides:
        for key, value in source.items():
            if value is None:
                continue
            key = key.replace("-", "_")
            if key not in DEFAULTS:
                raise BadInput(f"unknown setting {key!r}")
            merged[key] = value
    return Settings(
        target=_choice("target", merged["target"], TARGETS),
        systems=parse_systems(merged["systems"]),
        tier=_choice("tier", merged["tier"], TIERS),
        qps=number("qps", merged["qps"]),
        duration=number("duration", merged["duration"]),
        warmup=number("warmup", merged["warmup"]),
        loadgen=_choice("loadgen", merged["loadgen"], LOADGENS),
        max_in_flight=int(number("max_in_flight", merged["max_in_flight"], integer=True)),
        repeats=int(number("repeats", merged["repeats"], integer=True)),
        host=str(merged["host"] or ""),
        loadgen_host=str(merged["loadgen_host"] or ""),
        project=str(merged["project"] or ""),
        region=str(merged["region"] or DEFAULTS["region"]),
        dry_run=_as_bool("dry-run", merged["dry_run"]),
        find_max=_as_bool("find-max", merged["find_max"]),
        qps_levels=parse_levels(merged["qps_levels"], number("qps", merged["qps"])),
    )
