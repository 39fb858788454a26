"""The price book (costs.json) and the cost arithmetic.

Every dollar figure is a product you can redo by hand (METHOD rule 9):

    line item USD/hour = quantity x rate_usd x share

where `rate_usd` is always USD per unit per hour. Monthly list prices are turned into hourly rates at
730 hours per month, and the item text says so. Items shared by both systems (GKE management fee,
load-generator node pool, forwarding rules) are charged half to each, so the two systems' totals add
up to the bill of the whole deployment exactly once.

Everything here except `load_costs`/`costs_digest` is a pure function of plain data.
`python -m scripts.costs [--tier T] [--file F]` prints the line items.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
from pathlib import Path
from typing import Any, Iterable

import jsonschema
from jsonschema.exceptions import best_match
from tabulate import tabulate

from scripts import paths
from scripts.errors import BadInput, cli_entry

HOURS_PER_MONTH = 730.0
SECONDS_PER_HOUR = 3600.0
SYSTEMS = ("trillian", "tesseract")
SHARED_SHARE = 0.5  # each system carries half of what both use
PROCESSING_UNITS_PER_NODE = 1000  # Spanner takes multiples of 100 PU below one node, whole nodes above
SCHEMA_FILE = paths.SCHEMAS_DIR / "costs.schema.json"

_E2_STANDARD = re.compile(r"^e2-standard-(\d+)$")
_DB_CUSTOM = re.compile(r"^db-custom-(\d+)-(\d+)$")


# --------------------------------------------------------------------------- loading and validation


def load_costs(path: str | Path = paths.COSTS_FILE) -> dict[str, Any]:
    """Read, schema-validate and cross-check a price book; BadInput (one line) on any problem."""
    path = Path(path)
    label = _label(path)
    doc = _read_json(path, label)
    schema = _read_json(SCHEMA_FILE, _label(SCHEMA_FILE))
    error = best_match(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    if error is not None:
        where = _key_path(error.absolute_path)
        raise BadInput(f"{label}: {where + ': ' if where else ''}{error.message}")
    _check_references(doc, label)
    return doc


def costs_digest(path: str | Path = paths.COSTS_FILE) -> str:
    """sha256 (hex) of the price book's bytes, for result fingerprints."""
    path = Path(path)
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise BadInput(f"{_label(path)}: file not found") from None
    except OSError as exc:
        raise BadInput(f"{_label(path)}: cannot read ({exc.strerror or exc})") from None


def _label(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(paths.REPO))
    except ValueError:
        return str(path)


class _NotJson(ValueError):
    pass


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A repeated key would silently overwrite a price.
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _NotJson(f"duplicate key {key!r}")
        seen[key] = value
    return seen


def _reject_constant(name: str) -> None:
    raise _NotJson(f"{name} is not a JSON number")


def _read_json(path: Path, label: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{label}: file not found") from None
    except UnicodeDecodeError as exc:
        raise BadInput(f"{label}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise BadInput(f"{label}: cannot read ({exc.strerror or exc})") from None
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{label}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except _NotJson as exc:
        raise BadInput(f"{label}: not valid JSON: {exc}") from None


def _key_path(parts: Iterable[str | int]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _known(names: Iterable[str]) -> str:
    return ", ".join(names)


def _check_references(doc: dict[str, Any], label: str) -> None:
    """What the schema cannot say: names that must exist, shapes that must match their names."""
    for name, shape in doc["machine_types"].items():
        match = _E2_STANDARD.match(name)
        if match and (shape["vcpu"] != int(match[1]) or shape["ram_gib"] != 4 * int(match[1])):
            raise BadInput(
                f"{label}: machine_types.{name}: {name} has {match[1]} vCPU and {4 * int(match[1])} GiB, "
                f"file says {shape['vcpu']} vCPU and {shape['ram_gib']} GiB"
            )
    for name, shape in doc["cloudsql_tiers"].items():
        match = _DB_CUSTOM.match(name)
        if match and (shape["vcpu"] != int(match[1]) or shape["ram_gib"] * 1024 != int(match[2])):
            raise BadInput(
                f"{label}: cloudsql_tiers.{name}: {name} has {match[1]} vCPU and {int(match[2]) / 1024:g} GiB, "
                f"file says {shape['vcpu']} vCPU and {shape['ram_gib']} GiB"
            )
    for tier_name, tier in doc["tiers"].items():
        for pool_name, pool in tier["gke"]["node_pools"].items():
            machine = pool["machine_type"]
            if machine not in doc["machine_types"]:
                raise BadInput(
                    f"{label}: tiers.{tier_name}.gke.node_pools.{pool_name}.machine_type: unknown machine type "
                    f"{machine!r} (known: {_known(doc['machine_types'])})"
                )
        sql_tier = tier["cloudsql"]["tier"]
        if sql_tier not in doc["cloudsql_tiers"]:
            raise BadInput(
                f"{label}: tiers.{tier_name}.cloudsql.tier: unknown Cloud SQL tier {sql_tier!r} "
                f"(known: {_known(doc['cloudsql_tiers'])})"
            )
        units = tier["spanner"]["processing_units"]
        if units > PROCESSING_UNITS_PER_NODE and units % PROCESSING_UNITS_PER_NODE:
            raise BadInput(
                f"{label}: tiers.{tier_name}.spanner.processing_units: {units} is not allowed "
                "(above 1000 PU Spanner takes whole nodes: multiples of 1000)"
            )


# --------------------------------------------------------------------------- tiers


def tier_names(costs: dict[str, Any]) -> list[str]:
    """Tier names in file order."""
    return list(costs["tiers"])


def check_tier(costs: dict[str, Any], tier: str) -> None:
    if tier not in costs["tiers"]:
        raise BadInput(f"unknown tier {tier!r} (known: {_known(tier_names(costs))})")


def _check_system(system: str) -> None:
    if system not in SYSTEMS:
        raise BadInput(f"unknown system {system!r} (known: {_known(SYSTEMS)})")


# --------------------------------------------------------------------------- line items


def _item(item: str, quantity: float, unit: str, rate_usd: float, share: float, source: str) -> dict[str, Any]:
    return {
        "item": item,
        "quantity": float(quantity),
        "unit": unit,
        "rate_usd": rate_usd,
        "share": share,
        "usd_per_hour": quantity * rate_usd * share,
        "source": source,
    }


def _hourly(costs: dict[str, Any], key: str) -> tuple[float, str]:
    price = costs["prices"][key]
    return price["usd"], price["source"]


def _monthly(costs: dict[str, Any], key: str) -> tuple[float, str, str]:
    """(hourly rate, source, text showing the conversion) for a per-GiB-month price."""
    price = costs["prices"][key]
    return price["usd"] / HOURS_PER_MONTH, price["source"], f"{price['usd']:g} USD per GiB-month / 730 h"


def _node_pool_items(costs: dict[str, Any], pool: dict[str, Any], name: str, share: float) -> list[dict[str, Any]]:
    machine = pool["machine_type"]
    shape = costs["machine_types"][machine]
    nodes = pool["nodes"]
    what = f"{name} node pool, {nodes} x {machine}"
    vcpu_rate, vcpu_source = _hourly(costs, "e2_vcpu_hour")
    ram_rate, ram_source = _hourly(costs, "e2_ram_gib_hour")
    disk_rate, disk_source, disk_text = _monthly(costs, "pd_balanced_gib_month")
    return [
        _item(f"{what}: vCPU", nodes * shape["vcpu"], "vCPU", vcpu_rate, share, vcpu_source),
        _item(f"{what}: memory", nodes * shape["ram_gib"], "GiB", ram_rate, share, ram_source),
        _item(
            f"{what}: boot disks, balanced PD {pool['disk_gib']} GiB each ({disk_text})",
            nodes * pool["disk_gib"], "GiB", disk_rate, share, disk_source,
        ),
    ]


def _shared_items(costs: dict[str, Any], tier: dict[str, Any]) -> list[dict[str, Any]]:
    fee_rate, fee_source = _hourly(costs, "gke_cluster_hour")
    rule_rate, rule_source = _hourly(costs, "lb_forwarding_rule_hour")
    return [
        _item("shared: GKE Standard cluster management fee", 1, "cluster", fee_rate, SHARED_SHARE, fee_source),
        *_node_pool_items(costs, tier["gke"]["node_pools"]["loadgen"], "shared: loadgen", SHARED_SHARE),
        _item("shared: load balancer forwarding rules", tier["forwarding_rules"], "rule", rule_rate,
              SHARED_SHARE, rule_source),
    ]


def _trillian_items(costs: dict[str, Any], tier: dict[str, Any]) -> list[dict[str, Any]]:
    sql = tier["cloudsql"]
    shape = costs["cloudsql_tiers"][sql["tier"]]
    what = f"Cloud SQL for MySQL Enterprise {sql['tier']}, single zone"
    vcpu_rate, vcpu_source = _hourly(costs, "cloudsql_vcpu_hour")
    ram_rate, ram_source = _hourly(costs, "cloudsql_ram_gib_hour")
    ssd_rate, ssd_source, ssd_text = _monthly(costs, "cloudsql_ssd_gib_month")
    return [
        *_node_pool_items(costs, tier["gke"]["node_pools"]["trillian"], "trillian", 1.0),
        _item(f"{what}: vCPU", shape["vcpu"], "vCPU", vcpu_rate, 1.0, vcpu_source),
        _item(f"{what}: memory", shape["ram_gib"], "GiB", ram_rate, 1.0, ram_source),
        _item(f"{what}: SSD storage, provisioned ({ssd_text})", sql["storage_gib"], "GiB", ssd_rate, 1.0, ssd_source),
    ]


def _tesseract_items(costs: dict[str, Any], tier: dict[str, Any]) -> list[dict[str, Any]]:
    units = tier["spanner"]["processing_units"]
    pu_rate, pu_source = _hourly(costs, "spanner_100pu_hour")
    gcs_rate, gcs_source, gcs_text = _monthly(costs, "gcs_standard_gib_month")
    return [
        *_node_pool_items(costs, tier["gke"]["node_pools"]["tesseract"], "tesseract", 1.0),
        _item(f"Spanner Standard regional, {units} PU", units / 100, "100 PU", pu_rate, 1.0, pu_source),
        _item(f"GCS Standard storage, assumed size ({gcs_text})", tier["gcs"]["storage_gib"], "GiB", gcs_rate, 1.0,
              gcs_source),
    ]


def provisioned_cost(costs: dict[str, Any], tier: str, system: str) -> dict[str, Any]:
    """What one system's deployment costs per hour while it exists, whatever it does.

    Spanner storage is not here: it is billed on bytes stored, not provisioned.
    """
    check_tier(costs, tier)
    _check_system(system)
    spec = costs["tiers"][tier]
    own = _trillian_items(costs, spec) if system == "trillian" else _tesseract_items(costs, spec)
    items = own + _shared_items(costs, spec)
    return {
        "tier": tier,
        "system": system,
        "usd_per_hour": math.fsum(item["usd_per_hour"] for item in items),
        "items": items,
    }


# --------------------------------------------------------------------------- consumption and ratios


def _number(name: str, value: Any, *, allow_none: bool = False, positive: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInput(f"{name}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise BadInput(f"{name}: {value!r} is not a finite number")
    if value < 0 or (positive and value == 0):
        raise BadInput(f"{name}: {value!r} must be {'> 0' if positive else '>= 0'}")
    return float(value)


def consumed_cost(costs: dict[str, Any], cpu_seconds: float, ram_gib_seconds: float, window_s: float) -> dict[str, Any]:
    """What the CPU and memory a system actually used would cost at E2 rates.

    `cpu_seconds` (CPU time) and `ram_gib_seconds` (time integral of RSS) are totals over the window;
    they are turned into rates first (mean vCPUs, mean GiB = total / window_s) and priced per hour,
    so the items have the same shape as `provisioned_cost`. `usd` is the total for the window.
    """
    cpu = _number("cpu_seconds", cpu_seconds)
    ram = _number("ram_gib_seconds", ram_gib_seconds)
    window = _number("window_s", window_s, positive=True)
    vcpu_rate, vcpu_source = _hourly(costs, "e2_vcpu_hour")
    ram_rate, ram_source = _hourly(costs, "e2_ram_gib_hour")
    items = [
        _item(f"CPU used at E2 vCPU rate ({cpu:g} CPU-s / {window:g} s)", cpu / window, "vCPU (mean)",
              vcpu_rate, 1.0, vcpu_source),
        _item(f"memory used at E2 RAM rate ({ram:g} GiB-s / {window:g} s)", ram / window, "GiB (mean RSS)",
              ram_rate, 1.0, ram_source),
    ]
    usd_per_hour = math.fsum(item["usd_per_hour"] for item in items)
    return {
        "usd_per_hour": usd_per_hour,
        "usd": usd_per_hour * window / SECONDS_PER_HOUR,
        "window_s": window,
        "items": items,
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def derived(usd_per_hour: float | None, qps: float | None, entries: int, window_s: float,
            cpu_seconds: float) -> dict[str, Any]:
    """Cost and efficiency ratios, each None when its inputs leave it undefined (never inf or nan).

    usd_per_million_entries = usd_per_hour / (qps x 3600) x 1e6
    qps_per_usd_hour        = qps / usd_per_hour
    entries_per_cpu_second  = entries / cpu_seconds
    `math` holds each formula with the numbers filled in, or why it is undefined.
    """
    usd = _number("usd_per_hour", usd_per_hour, allow_none=True)
    rate = _number("qps", qps, allow_none=True)
    count = _number("entries", entries)
    window = _number("window_s", window_s)
    cpu = _number("cpu_seconds", cpu_seconds)

    out: dict[str, Any] = {
        "usd_per_million_entries": None,
        "qps_per_usd_hour": None,
        "entries_per_cpu_second": None,
        "usd_for_window": None if usd is None else usd * window / SECONDS_PER_HOUR,
    }
    math_text: dict[str, str] = {}

    if usd is None or not rate:
        math_text["usd_per_million_entries"] = "undefined: " + ("no cost" if usd is None else f"qps is {qps!r}")
    else:
        value = _finite(usd / (rate * SECONDS_PER_HOUR) * 1e6)
        out["usd_per_million_entries"] = value
        math_text["usd_per_million_entries"] = (
            f"{usd:.6g} USD/h / ({rate:.6g} entries/s x 3600 s/h) x 1e6 = {value:.6g} USD" if value is not None
            else "undefined: out of floating-point range"
        )

    if not rate or not usd:
        math_text["qps_per_usd_hour"] = "undefined: " + (f"qps is {qps!r}" if not rate else f"cost is {usd_per_hour!r}")
    else:
        value = _finite(rate / usd)
        out["qps_per_usd_hour"] = value
        math_text["qps_per_usd_hour"] = (
            f"{rate:.6g} entries/s / {usd:.6g} USD/h = {value:.6g}" if value is not None
            else "undefined: out of floating-point range"
        )

    if not cpu:
        math_text["entries_per_cpu_second"] = "undefined: cpu_seconds is 0"
    else:
        value = _finite(count / cpu)
        out["entries_per_cpu_second"] = value
        math_text["entries_per_cpu_second"] = (
            f"{count:.0f} entries / {cpu:.6g} CPU-s = {value:.6g}" if value is not None
            else "undefined: out of floating-point range"
        )

    out["math"] = math_text
    return out


def estimate(costs: dict[str, Any], tier: str, duration_s: float) -> dict[str, Any]:
    """Provisioned USD for both systems over `duration_s` (before a cloud deploy).

    Shared items are split half and half, so `usd` is the whole deployment's bill, counted once.
    """
    check_tier(costs, tier)
    duration = _number("duration_s", duration_s)
    hours = duration / SECONDS_PER_HOUR
    systems = {}
    for system in SYSTEMS:
        per_hour = provisioned_cost(costs, tier, system)["usd_per_hour"]
        systems[system] = {"usd_per_hour": per_hour, "usd": per_hour * hours}
    total_per_hour = math.fsum(s["usd_per_hour"] for s in systems.values())
    return {
        "tier": tier,
        "duration_s": duration,
        "hours": hours,
        "systems": systems,
        "usd_per_hour": total_per_hour,
        "usd": total_per_hour * hours,
    }


# --------------------------------------------------------------------------- CLI


def _plain(value: float, decimals: int) -> str:
    """Fixed-point without trailing zeros: no exponents in a table people check by hand."""
    return f"{value:.{decimals}f}".rstrip("0").rstrip(".") or "0"


def _item_rows(items: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [i["item"], _plain(i["quantity"], 6), i["unit"], _plain(i["rate_usd"], 9), _plain(i["share"], 3),
         f"{i['usd_per_hour']:.6f}"]
        for i in items
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.costs",
        description="Print each system's provisioned cost line items from the price book.",
    )
    parser.add_argument("--tier", help="tier to price (default: every tier in the file)")
    parser.add_argument("--file", type=Path, default=paths.COSTS_FILE, help="price book (default: costs.json)")
    args = parser.parse_args(argv)

    costs = load_costs(args.file)
    tiers = [args.tier] if args.tier is not None else tier_names(costs)
    for tier in tiers:
        check_tier(costs, tier)

    print(f"{_label(args.file)} revision {costs['revision']}, {costs['region']}, {costs['currency']}, "
          f"sha256 {costs_digest(args.file)[:12]}; rate_usd is USD per unit per hour, month = 730 h")
    sources: dict[str, None] = {}
    for tier in tiers:
        for system in SYSTEMS:
            result = provisioned_cost(costs, tier, system)
            per_hour = result["usd_per_hour"]
            print(f"\n{tier} / {system}: {per_hour:.4f} USD/h ({per_hour * HOURS_PER_MONTH:.2f} USD per 730 h)")
            print(tabulate(
                _item_rows(result["items"]),
                headers=["item", "quantity", "unit", "rate_usd", "share", "usd_per_hour"],
                colalign=("left", "right", "left", "right", "right", "right"),
                disable_numparse=True,
            ))
            sources.update(dict.fromkeys(item["source"] for item in result["items"]))
    print("\nsources:")
    for source in sources:
        print(f"  {source}")
    return 0


run = cli_entry(main)

if __name__ == "__main__":
    run(sys.argv[1:])
