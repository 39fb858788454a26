"""Cost arithmetic checked against sums done by hand on a price book with round prices."""
from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

REPO_ROOT = str(Path(__file__).resolve().parent.parent)

from scripts import costs as c  # noqa: E402
from scripts import paths  # noqa: E402
from scripts.errors import BadInput  # noqa: E402

URL = "https://example.test/price"

# Round prices. The monthly ones are multiples of 0.073 so that /730 h is exact-looking:
# 0.73/730 = 0.001 per GiB-hour, 0.073/730 = 0.0001 per GiB-hour.
SYNTHETIC = {
    "schema_version": 1,
    "revision": "2026-01-01",
    "region": "us-central1",
    "currency": "USD",
    "prices": {
        "e2_vcpu_hour": {"usd": 0.01, "source": URL},
        "e2_ram_gib_hour": {"usd": 0.001, "source": URL},
        "gke_cluster_hour": {"usd": 0.10, "source": URL},
        "cloudsql_vcpu_hour": {"usd": 0.04, "source": URL},
        "cloudsql_ram_gib_hour": {"usd": 0.005, "source": URL},
        "cloudsql_ssd_gib_month": {"usd": 0.73, "source": URL},
        "spanner_100pu_hour": {"usd": 0.10, "source": URL},
        "spanner_storage_gib_month": {"usd": 0.365, "source": URL},
        "gcs_standard_gib_month": {"usd": 0.073, "source": URL},
        "lb_forwarding_rule_hour": {"usd": 0.025, "source": URL},
        "pd_balanced_gib_month": {"usd": 0.073, "source": URL, "note": "0.073/730 = 0.0001 per GiB-hour"},
    },
    "machine_types": {
        "e2-standard-2": {"vcpu": 2, "ram_gib": 8},
        "e2-standard-4": {"vcpu": 4, "ram_gib": 16},
    },
    "cloudsql_tiers": {"db-custom-2-7680": {"vcpu": 2, "ram_gib": 7.5}},
    "tiers": {
        "t": {
            "description": "hand-checked",
            "gke": {
                "node_pools": {
                    "trillian": {"machine_type": "e2-standard-2", "nodes": 1, "disk_gib": 100},
                    "tesseract": {"machine_type": "e2-standard-2", "nodes": 2, "disk_gib": 100},
                    "loadgen": {"machine_type": "e2-standard-4", "nodes": 1, "disk_gib": 100},
                }
            },
            "cloudsql": {"tier": "db-custom-2-7680", "storage_gib": 100},
            "spanner": {"processing_units": 200},
            "gcs": {"storage_gib": 1000},
            "forwarding_rules": 2,
        }
    },
}

# Shared items, half to each system:
#   GKE fee 1 x 0.10 x 0.5 = 0.05; loadgen vCPU 4 x 0.01 x 0.5 = 0.02; RAM 16 x 0.001 x 0.5 = 0.008;
#   disk 100 x 0.0001 x 0.5 = 0.005; forwarding rules 2 x 0.025 x 0.5 = 0.025
SHARED = 0.05 + 0.02 + 0.008 + 0.005 + 0.025  # 0.108
# Trillian: node 2 x 0.01 + 8 x 0.001 + 100 x 0.0001 = 0.02 + 0.008 + 0.01
#           Cloud SQL 2 x 0.04 + 7.5 x 0.005 + 100 x 0.001 = 0.08 + 0.0375 + 0.1
TRILLIAN = 0.02 + 0.008 + 0.01 + 0.08 + 0.0375 + 0.1 + SHARED  # 0.3635
# TesseraCT: 2 nodes: 4 x 0.01 + 16 x 0.001 + 200 x 0.0001 = 0.04 + 0.016 + 0.02
#            Spanner 200 PU = 2 x 0.10 = 0.2; GCS 1000 x 0.0001 = 0.1
TESSERACT = 0.04 + 0.016 + 0.02 + 0.2 + 0.1 + SHARED  # 0.484


def write(tmp_path: Path, doc, name: str = "costs.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return path


def bad(tmp_path: Path, doc) -> str:
    with pytest.raises(BadInput) as info:
        c.load_costs(write(tmp_path, doc))
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.fixture
def synthetic() -> dict:
    return copy.deepcopy(SYNTHETIC)


# --------------------------------------------------------------------------- hand-computed values


def test_synthetic_book_is_valid(tmp_path, synthetic):
    assert c.load_costs(write(tmp_path, synthetic)) == synthetic


def test_trillian_provisioned(synthetic):
    result = c.provisioned_cost(synthetic, "t", "trillian")
    assert TRILLIAN == pytest.approx(0.3635)
    assert result["usd_per_hour"] == pytest.approx(TRILLIAN)
    by_item = {i["item"]: i for i in result["items"]}
    ssd = next(i for name, i in by_item.items() if "SSD" in name)
    assert (ssd["quantity"], ssd["unit"], ssd["share"]) == (100, "GiB", 1.0)
    assert ssd["rate_usd"] == pytest.approx(0.001)  # 0.73 / 730
    assert ssd["usd_per_hour"] == pytest.approx(0.1)
    assert "0.73 USD per GiB-month / 730 h" in ssd["item"]
    fee = next(i for name, i in by_item.items() if "management fee" in name)
    assert (fee["quantity"], fee["rate_usd"], fee["share"], fee["usd_per_hour"]) == (1, 0.10, 0.5, 0.05)


def test_tesseract_provisioned(synthetic):
    result = c.provisioned_cost(synthetic, "t", "tesseract")
    assert TESSERACT == pytest.approx(0.484)
    assert result["usd_per_hour"] == pytest.approx(TESSERACT)
    spanner = next(i for i in result["items"] if i["item"].startswith("Spanner"))
    assert (spanner["quantity"], spanner["unit"], spanner["usd_per_hour"]) == (2, "100 PU", pytest.approx(0.2))
    assert not any("Cloud SQL" in i["item"] for i in result["items"])


def test_every_item_is_quantity_times_rate_times_share(synthetic):
    for system in c.SYSTEMS:
        result = c.provisioned_cost(synthetic, "t", system)
        for item in result["items"]:
            assert set(item) == {"item", "quantity", "unit", "rate_usd", "share", "usd_per_hour", "source"}
            assert item["usd_per_hour"] == pytest.approx(item["quantity"] * item["rate_usd"] * item["share"])
        assert result["usd_per_hour"] == pytest.approx(sum(i["usd_per_hour"] for i in result["items"]))


def test_shared_items_are_billed_once_across_systems(synthetic):
    # The whole deployment, priced without shares:
    #   own items: Trillian 0.02 + 0.008 + 0.01 + 0.08 + 0.0375 + 0.1 = 0.2555
    #              TesseraCT 0.04 + 0.016 + 0.02 + 0.2 + 0.1 = 0.376
    #   shared items at full price: GKE 0.10 + loadgen 0.04 + 0.016 + 0.01 + rules 2 x 0.025 = 0.216
    assert c.estimate(synthetic, "t", 3600)["usd_per_hour"] == pytest.approx(0.2555 + 0.376 + 0.216)  # 0.8475


def test_estimate(synthetic):
    result = c.estimate(synthetic, "t", 1800)  # half an hour
    assert result["hours"] == 0.5
    assert result["systems"]["trillian"]["usd"] == pytest.approx(0.3635 * 0.5)  # 0.18175
    assert result["systems"]["tesseract"]["usd"] == pytest.approx(0.484 * 0.5)  # 0.242
    assert result["usd"] == pytest.approx(0.18175 + 0.242)  # 0.42375
    assert c.estimate(synthetic, "t", 0)["usd"] == 0


def test_consumed_cost(synthetic):
    # 7200 CPU-s over 3600 s = 2 vCPUs on average x 0.01 = 0.02 USD/h
    # 36000 GiB-s over 3600 s = 10 GiB on average x 0.001 = 0.01 USD/h
    result = c.consumed_cost(synthetic, cpu_seconds=7200, ram_gib_seconds=36000, window_s=3600)
    cpu, ram = result["items"]
    assert (cpu["quantity"], cpu["rate_usd"], cpu["usd_per_hour"]) == (2, 0.01, pytest.approx(0.02))
    assert (ram["quantity"], ram["rate_usd"], ram["usd_per_hour"]) == (10, 0.001, pytest.approx(0.01))
    assert result["usd_per_hour"] == pytest.approx(0.03)
    assert result["usd"] == pytest.approx(0.03)  # one hour


def test_consumed_cost_turns_totals_into_rates(synthetic):
    # Same mean use over a 2-hour window: the hourly rate is unchanged, the window total doubles.
    result = c.consumed_cost(synthetic, cpu_seconds=14400, ram_gib_seconds=72000, window_s=7200)
    assert result["usd_per_hour"] == pytest.approx(0.03)
    assert result["usd"] == pytest.approx(0.06)


@pytest.mark.parametrize("kwargs, name", [
    ({"cpu_seconds": -1, "ram_gib_seconds": 0, "window_s": 60}, "cpu_seconds"),
    ({"cpu_seconds": 1, "ram_gib_seconds": math.nan, "window_s": 60}, "ram_gib_seconds"),
    ({"cpu_seconds": 1, "ram_gib_seconds": 1, "window_s": 0}, "window_s"),
])
def test_consumed_cost_rejects_bad_numbers(synthetic, kwargs, name):
    with pytest.raises(BadInput, match=name):
        c.consumed_cost(synthetic, **kwargs)


def test_derived():
    # 0.36 USD/h at 100 entries/s: 0.36 / (100 x 3600) x 1e6 = 1.0 USD per million entries
    result = c.derived(usd_per_hour=0.36, qps=100, entries=360_000, window_s=3600, cpu_seconds=1800)
    assert result["usd_per_million_entries"] == pytest.approx(1.0)
    assert result["qps_per_usd_hour"] == pytest.approx(100 / 0.36)  # 277.78
    assert result["entries_per_cpu_second"] == pytest.approx(200)  # 360000 / 1800
    assert result["usd_for_window"] == pytest.approx(0.36)
    assert result["math"]["usd_per_million_entries"] == "0.36 USD/h / (100 entries/s x 3600 s/h) x 1e6 = 1 USD"


@pytest.mark.parametrize("usd, qps, cpu, expect_none", [
    (0.36, None, 10, {"usd_per_million_entries", "qps_per_usd_hour"}),
    (0.36, 0, 10, {"usd_per_million_entries", "qps_per_usd_hour"}),
    (0.36, 10, 0, {"entries_per_cpu_second"}),
    (0.0, 10, 10, {"qps_per_usd_hour"}),
    (None, 10, 10, {"usd_per_million_entries", "qps_per_usd_hour"}),
])
def test_derived_undefined_is_none(usd, qps, cpu, expect_none):
    result = c.derived(usd_per_hour=usd, qps=qps, entries=100, window_s=60, cpu_seconds=cpu)
    keys = {"usd_per_million_entries", "qps_per_usd_hour", "entries_per_cpu_second"}
    assert {k for k in keys if result[k] is None} == expect_none
    for key in expect_none:
        assert result["math"][key].startswith("undefined")
    for key in keys - expect_none:
        assert math.isfinite(result[key])


def test_derived_never_overflows_to_inf():
    result = c.derived(usd_per_hour=1e-300, qps=1e300, entries=10**300, window_s=1, cpu_seconds=1e-300)
    for key in ("usd_per_million_entries", "qps_per_usd_hour", "entries_per_cpu_second"):
        assert result[key] is None or math.isfinite(result[key])


@pytest.mark.parametrize("field, value", [
    ("qps", -1.0), ("qps", math.inf), ("entries", -5), ("cpu_seconds", math.nan), ("usd_per_hour", "1"),
])
def test_derived_rejects_bad_numbers(field, value):
    args = {"usd_per_hour": 1.0, "qps": 1.0, "entries": 1, "window_s": 1.0, "cpu_seconds": 1.0, field: value}
    with pytest.raises(BadInput, match=field):
        c.derived(**args)


# --------------------------------------------------------------------------- the real price book


def test_schema_is_a_valid_draft_2020_12_schema():
    schema = json.loads(c.SCHEMA_FILE.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_real_costs_json_prices_every_tier():
    costs = c.load_costs()
    assert costs["region"] == "us-central1" and costs["currency"] == "USD"
    assert c.tier_names(costs) == ["small", "medium", "large"]
    for price in costs["prices"].values():
        assert price["source"].startswith("https://")
    for tier in c.tier_names(costs):
        for system in c.SYSTEMS:
            result = c.provisioned_cost(costs, tier, system)
            assert result["usd_per_hour"] > 0
            assert all(i["usd_per_hour"] >= 0 for i in result["items"])
        assert c.estimate(costs, tier, 3600)["usd"] > 0


def test_real_small_tier_by_hand():
    costs = c.load_costs()
    # e2-standard-2 node: 2 x 0.021811 + 8 x 0.002923 + 50 x 0.10/730
    node = 2 * 0.021811 + 8 * 0.002923 + 50 * 0.10 / 730
    shared = 0.5 * (0.10 + node)  # GKE fee + loadgen node; no forwarding rules
    sql = 2 * 0.0413 + 7.5 * 0.007 + 20 * 0.17 / 730
    spanner_gcs = 1 * 0.09 + 10 * 0.020 / 730
    assert c.provisioned_cost(costs, "small", "trillian")["usd_per_hour"] == pytest.approx(node + sql + shared)
    assert c.provisioned_cost(costs, "small", "tesseract")["usd_per_hour"] == pytest.approx(node + spanner_gcs + shared)


def test_costs_digest():
    assert c.costs_digest() == hashlib.sha256(paths.COSTS_FILE.read_bytes()).hexdigest()


def test_default_path_is_labelled_relative_to_repo():
    assert c._label(paths.COSTS_FILE) == "costs.json"


def test_unknown_tier_names_the_known_ones():
    with pytest.raises(BadInput, match=r"^unknown tier 'x' \(known: small, medium, large\)$"):
        c.check_tier(c.load_costs(), "x")


# --------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    with pytest.raises(BadInput, match="nope.json: file not found"):
        c.load_costs(tmp_path / "nope.json")
    with pytest.raises(BadInput, match="file not found"):
        c.costs_digest(tmp_path / "nope.json")


def test_unreadable_file(tmp_path):
    with pytest.raises(BadInput, match="cannot read"):
        c.load_costs(tmp_path)  # a directory


def test_malformed_json_gives_line_and_column(tmp_path):
    message = bad(tmp_path, '{\n  "schema_version": 1,,\n}')
    assert message.endswith("costs.json: not valid JSON: Expecting property name enclosed in double quotes "
                            "(line 2, column 23)")


def test_nan_is_not_json(tmp_path):
    assert "NaN is not a JSON number" in bad(tmp_path, '{"schema_version": NaN}')


def test_duplicate_key_is_rejected(tmp_path):
    text = json.dumps(SYNTHETIC).replace('"usd": 0.01,', '"usd": 0.01, "usd": 0.02,', 1)
    assert "duplicate key 'usd'" in bad(tmp_path, text)


def test_missing_key(tmp_path, synthetic):
    del synthetic["prices"]["gcs_standard_gib_month"]
    assert bad(tmp_path, synthetic).endswith("costs.json: prices: 'gcs_standard_gib_month' is a required property")


def test_missing_source(tmp_path, synthetic):
    del synthetic["prices"]["gke_cluster_hour"]["source"]
    assert bad(tmp_path, synthetic).endswith("prices.gke_cluster_hour: 'source' is a required property")


def test_negative_price(tmp_path, synthetic):
    synthetic["prices"]["e2_vcpu_hour"]["usd"] = -1
    assert bad(tmp_path, synthetic).endswith(
        "costs.json: prices.e2_vcpu_hour.usd: -1 is less than or equal to the minimum of 0")


def test_zero_price(tmp_path, synthetic):
    synthetic["prices"]["spanner_100pu_hour"]["usd"] = 0
    assert "prices.spanner_100pu_hour.usd: 0 is less than or equal to the minimum of 0" in bad(tmp_path, synthetic)


def test_wrong_type(tmp_path, synthetic):
    synthetic["prices"]["e2_ram_gib_hour"]["usd"] = "0.001"
    assert bad(tmp_path, synthetic).endswith("prices.e2_ram_gib_hour.usd: '0.001' is not of type 'number'")


def test_wrong_type_in_tier(tmp_path, synthetic):
    synthetic["tiers"]["t"]["gke"]["node_pools"]["loadgen"]["nodes"] = 1.5
    assert "tiers.t.gke.node_pools.loadgen.nodes: 1.5 is not of type 'integer'" in bad(tmp_path, synthetic)


def test_unknown_key(tmp_path, synthetic):
    synthetic["prices"]["e2_vcpu_hour"]["usd_per_month"] = 1
    assert "prices.e2_vcpu_hour: Additional properties are not allowed ('usd_per_month' was unexpected)" in bad(
        tmp_path, synthetic)


def test_source_must_be_a_url(tmp_path, synthetic):
    synthetic["prices"]["pd_balanced_gib_month"]["source"] = "the calculator"
    assert "prices.pd_balanced_gib_month.source" in bad(tmp_path, synthetic)


def test_non_e2_machine_type_is_rejected(tmp_path, synthetic):
    synthetic["machine_types"]["n2-standard-2"] = {"vcpu": 2, "ram_gib": 8}
    assert "machine_types: 'n2-standard-2' does not match" in bad(tmp_path, synthetic)


def test_tier_referencing_unknown_machine_type(tmp_path, synthetic):
    synthetic["tiers"]["t"]["gke"]["node_pools"]["trillian"]["machine_type"] = "e2-standard-3"
    assert bad(tmp_path, synthetic).endswith(
        "costs.json: tiers.t.gke.node_pools.trillian.machine_type: unknown machine type 'e2-standard-3' "
        "(known: e2-standard-2, e2-standard-4)")


def test_tier_referencing_unknown_cloudsql_tier(tmp_path, synthetic):
    synthetic["tiers"]["t"]["cloudsql"]["tier"] = "db-custom-4-15360"
    assert bad(tmp_path, synthetic).endswith(
        "tiers.t.cloudsql.tier: unknown Cloud SQL tier 'db-custom-4-15360' (known: db-custom-2-7680)")


def test_machine_shape_must_match_its_name(tmp_path, synthetic):
    synthetic["machine_types"]["e2-standard-4"]["ram_gib"] = 15
    assert "machine_types.e2-standard-4: e2-standard-4 has 4 vCPU and 16 GiB" in bad(tmp_path, synthetic)
    synthetic = copy.deepcopy(SYNTHETIC)
    synthetic["cloudsql_tiers"]["db-custom-2-7680"]["ram_gib"] = 8
    assert "cloudsql_tiers.db-custom-2-7680: db-custom-2-7680 has 2 vCPU and 7.5 GiB" in bad(tmp_path, synthetic)


def test_spanner_processing_units(tmp_path, synthetic):
    synthetic["tiers"]["t"]["spanner"]["processing_units"] = 150
    assert "tiers.t.spanner.processing_units: 150 is not a multiple of 100" in bad(tmp_path, synthetic)
    synthetic["tiers"]["t"]["spanner"]["processing_units"] = 1500
    assert "tiers.t.spanner.processing_units: 1500 is not allowed" in bad(tmp_path, synthetic)


def test_unknown_tier_and_system(synthetic):
    with pytest.raises(BadInput, match=r"^unknown tier 'x' \(known: t\)$"):
        c.provisioned_cost(synthetic, "x", "trillian")
    with pytest.raises(BadInput, match=r"^unknown tier 'x' \(known: t\)$"):
        c.estimate(synthetic, "x", 60)
    with pytest.raises(BadInput, match=r"^unknown system 'ctfe' \(known: trillian, tesseract\)$"):
        c.provisioned_cost(synthetic, "t", "ctfe")


# --------------------------------------------------------------------------- CLI


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.costs", *args], cwd=paths.REPO,
                          capture_output=True, text=True, timeout=60)


def test_cli_prints_line_items():
    done = run_cli("--tier", "small")
    assert done.returncode == 0, done.stderr
    assert "small / trillian:" in done.stdout and "small / tesseract:" in done.stdout
    assert "Spanner Standard regional, 100 PU" in done.stdout
    assert not re.search(r"\d[eE][+-]?\d", done.stdout)  # no exponents in a hand-checked table


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path):
    done = run_cli("--tier", "nope")
    assert done.returncode == 2
    assert done.stderr == "error: unknown tier 'nope' (known: small, medium, large)\n"
    broken = write(tmp_path, "{")
    done = run_cli("--file", str(broken))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "not valid JSON" in done.stderr
