"""The GKE target's pure parts and its guards: options, bad input before anything is created, the
cost estimate first, tier sizing, generated tfvars, key and config builders, the CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from scripts import costs as costs_mod
from scripts import gke, paths
from scripts import gke_spec as spec
from scripts.errors import BadInput, RunFailed

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def price_book():
    return costs_mod.load_costs()


def opts(**over):
    base = {"tier": "small", "tiers": ["small"], "systems": ["trillian", "tesseract"], "qps": 200,
            "duration": None, "warmup": 60, "dry_run": True, "project": "ctbench-offline",
            "region": "us-central1", "run_dir": paths.RESULTS_DIR}
    base.update(over)
    return base


# ------------------------------------------------------------------------------- options and guards


def test_defaults_window_is_15_minutes_on_gke(price_book):
    o = spec.parse_opts(opts(), price_book)
    assert o.duration == 900 and o.zone == "us-central1-a" and o.loadgen == "uniform"
    assert o.state_bucket == "ctbench-offline-ctbench-tfstate"
    # The local default (60 s) left untouched means "not given": still 15 minutes on gke.
    assert spec.parse_opts(opts(duration=60), price_book).duration == 900
    assert spec.parse_opts(opts(duration=60, duration_explicit=True), price_book).duration == 60
    assert spec.parse_opts(opts(duration=300), price_book).duration == 300


def test_the_harness_generator_is_the_default_on_gke(price_book):
    assert spec.parse_opts(opts(), price_book).loadgen == "uniform"
    assert spec.parse_opts(opts(loadgen="native"), price_book).loadgen == "native"


def test_tiers_run_in_the_given_order(price_book):
    o = spec.parse_opts(opts(tiers="small,medium,large"), price_book)
    assert o.tiers == ("small", "medium", "large") and o.tier == "small"


@pytest.mark.parametrize("bad, message", [
    ({"tier": "huge", "tiers": None}, "unknown tier 'huge'"),
    ({"tiers": ["small", "xl"]}, "unknown tier 'xl'"),
    ({"systems": ["trillian", "etcd"]}, "unknown system 'etcd'"),
    ({"loadgen": "wrk"}, "--loadgen"),
    ({"qps": 0}, "--qps must be > 0"),
    ({"qps": "fast"}, "--qps: expected a number"),
    ({"project": "Not A Project!"}, "not a Google Cloud project id"),
])
def test_bad_input_is_one_clear_line(price_book, bad, message):
    with pytest.raises(BadInput, match=message):
        spec.parse_opts(opts(**bad), price_book)


def test_missing_project_id(monkeypatch, price_book):
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    with pytest.raises(BadInput, match="no Google Cloud project"):
        spec.parse_opts(opts(project=None), price_book)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "from-env-project")
    assert spec.parse_opts(opts(project=None), price_book).project == "from-env-project"


@pytest.fixture
def nothing_runs(monkeypatch):
    """Fail the test if any subprocess or API session would be created."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"something was run: {args[:1]}")
    monkeypatch.setattr(gke, "_run", refuse)
    from scripts import gcs
    monkeypatch.setattr(gcs, "authorized_session", refuse)


@pytest.fixture
def no_credentials(monkeypatch):
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    def default(*args, **kwargs):
        raise DefaultCredentialsError("Your default credentials were not found.")
    monkeypatch.setattr(google.auth, "default", default)


@pytest.mark.parametrize("step", ["bootstrap", "deploy", "smoke", "bench", "metrics", "down", "ci"])
def test_no_credentials_stops_every_step_before_anything_is_created(step, nothing_runs, no_credentials):
    with pytest.raises(BadInput, match="no Google default credentials"):
        getattr(gke, step)(opts(dry_run=False), log=lambda _t: None)


@pytest.mark.parametrize("step", ["bootstrap", "deploy", "smoke", "bench", "metrics", "down", "ci"])
def test_unknown_tier_stops_every_step_before_anything_is_created(step, nothing_runs):
    with pytest.raises(BadInput, match="unknown tier"):
        getattr(gke, step)(opts(tier="xl", tiers=["xl"], dry_run=False), log=lambda _t: None)


def test_dry_run_needs_no_credentials(nothing_runs, no_credentials):
    lines: list[str] = []
    steps = gke.deploy(opts(), log=lines.append)
    assert steps and lines[0].startswith("  1. [deploy] cost estimate, tier small:")


@pytest.mark.parametrize("step", ["deploy", "ci"])
def test_the_cost_estimate_is_shown_before_anything_is_created(monkeypatch, step):
    """A real (not dry) deploy or ci with credentials: the estimate is logged once, before the first command."""
    import google.auth
    from scripts import gcs
    events: list[str] = []
    monkeypatch.setattr(google.auth, "default", lambda *a, **k: (object(), "p"))
    monkeypatch.setattr(gcs, "authorized_session", lambda: object())

    def first_command(cmd, **kwargs):
        events.append("run: " + " ".join(cmd[:3]))
        raise RunFailed("stop here")
    monkeypatch.setattr(gke, "_run", first_command)
    with pytest.raises(RunFailed, match="stop here"):
        getattr(gke, step)(opts(dry_run=False), log=events.append)
    assert events[0].startswith("cost estimate, tier small:")
    assert events[1].startswith("run: terraform -chdir=terraform init")
    assert sum(e.startswith("cost estimate") for e in events) == 1


def test_estimate_text_is_the_price_book_arithmetic(price_book):
    o = spec.parse_opts(opts(), price_book)
    seconds = spec.estimate_seconds(o)
    assert seconds == 40 * 60 + 2 * (60 + 900 + 300) + 20 * 60
    est = costs_mod.estimate(price_book, "small", seconds)
    text = spec.estimate_text(price_book, o)
    assert f"{est['usd']:.2f} USD" in text and price_book["revision"] in text


# ------------------------------------------------------------------------------- sizing and tfvars


@pytest.mark.parametrize("tier", ["small", "medium", "large"])
def test_tfvars_files_match_costs_json(price_book, tier):
    text = (REPO / "terraform" / "tiers" / f"{tier}.tfvars").read_text()
    assert text == spec.tfvars_text(price_book, tier), \
        f"terraform/tiers/{tier}.tfvars is stale: run `python -m scripts.gke tfvars`"
    tier_spec = price_book["tiers"][tier]
    assert f'cloudsql_tier            = "{tier_spec["cloudsql"]["tier"]}"' in text
    assert f'spanner_processing_units = {tier_spec["spanner"]["processing_units"]}' in text
    assert tier_spec["forwarding_rules"] == 0    # ClusterIP only: no load balancer is priced or created


def test_every_tier_has_tfvars_and_nothing_else():
    files = sorted(p.stem for p in (REPO / "terraform" / "tiers").glob("*.tfvars"))
    assert files == sorted(costs_mod.tier_names(costs_mod.load_costs()))


@pytest.mark.parametrize("tier", ["small", "medium", "large"])
def test_requests_fit_the_nodes(price_book, tier):
    res = spec.workload_resources(price_book, tier)
    pools = price_book["tiers"][tier]["gke"]["node_pools"]
    for pool, names in (("trillian", ["trillian_log_server", "ct_server", "trillian_log_signer"]),
                        ("tesseract", ["tesseract"]), ("loadgen", ["loadgen"])):
        shape = price_book["machine_types"][pools[pool]["machine_type"]]
        nodes = pools[pool]["nodes"]
        allocatable = shape["vcpu"] * 1000 - spec._gke_reserved_cpu_m(shape["vcpu"]) - spec.DAEMONSET_CPU_M
        total = sum(res[n]["cpu_m"] * res[n]["replicas"] for n in names)
        assert total <= allocatable * nodes, (tier, pool)
        # worst case on one node: the largest pods that could land together
        assert max(res[n]["cpu_m"] for n in names) * len(names) <= allocatable, (tier, pool)
        for n in names:
            assert res[n]["cpu_m"] > 0 and res[n]["memory_mib"] > 0
    assert res["trillian_log_signer"]["replicas"] == 1          # no etcd: exactly one signer
    assert res["tesseract"]["replicas"] == pools["tesseract"]["nodes"]


def test_gke_reservations_match_the_documented_table():
    assert spec._gke_reserved_cpu_m(2) == pytest.approx(70)
    assert spec._gke_reserved_cpu_m(4) == pytest.approx(80)
    assert spec._gke_reserved_mem_gib(8) == pytest.approx(1.8 + 100 / 1024)
    assert spec._gke_reserved_mem_gib(32) == pytest.approx(1 + 0.8 + 0.8 + 16 * 0.06 + 100 / 1024)


def test_load_is_the_same_work_for_both_systems(price_book):
    o = spec.parse_opts(opts(tier="large", qps=1000), price_book)
    outs = spec.placeholder_outputs("p", "large")
    a = spec.load_values(price_book, o, "trillian", outs, "r1")
    b = spec.load_values(price_book, o, "tesseract", outs, "r1")
    for key in ("parallelism", "rate_per_pod", "duration_s", "warmup_s", "max_in_flight_per_pod"):
        assert a[key] == b[key], key
    assert a["parallelism"] * a["rate_per_pod"] == pytest.approx(1000, rel=1e-3)
    assert a["url"].startswith("http://ct-server.ctbench.svc:6962/bench/")
    assert b["url"].startswith("http://tesseract.ctbench.svc:6962/bench/")


# ------------------------------------------------------------------------------- builders


def test_secret_versions_must_be_numeric():
    ok = "projects/p/secrets/ctb-small-tesseract-signer-private/versions/3"
    assert spec.check_secret_version(ok) == ok
    for bad in ("projects/p/secrets/s/versions/latest", "projects/p/secrets/s", "s"):
        with pytest.raises(BadInput, match="numeric"):
            spec.check_secret_version(bad)


def test_ctfe_config_carries_the_tree_and_the_key_inline():
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    pub_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    text = spec.ctfe_log_config(7012345, key_pem, pub_pem)
    assert "log_id: 7012345" in text and 'prefix: "bench"' in text
    assert "[type.googleapis.com/keyspb.PrivateKey]" in text and 'roots_pem_file: "/etc/ctfe/roots.pem"' in text
    assert "BEGIN" not in text        # DER, octal-escaped: no PEM inside the text proto


def test_mysql_option_file_verifies_the_server():
    out = spec.placeholder_outputs("p", "small") | {"mysql_password": "s3cret"}
    text = spec.mysql_option_file(out)
    assert "ssl-mode=VERIFY_CA" in text and "ssl-ca=/etc/mysql-tls/ca.pem" in text
    assert "password=s3cret" in text and "database=trillian" in text


def test_trillian_flag_file_keeps_the_password_off_the_command_line():
    import shlex
    out = spec.placeholder_outputs("p", "small") | {"mysql_password": "Ab3dE6gH9"}
    (arg,) = shlex.split(spec.trillian_flag_file(out))      # Trillian splits the file with shell rules
    assert arg == "--mysql_uri=trillian:Ab3dE6gH9@tcp(10.99.0.3:3306)/trillian"
    with pytest.raises(RunFailed, match="would expand"):   # ... then runs os.ExpandEnv on each word
        spec.trillian_flag_file(out | {"mysql_password": "pw$HOME"})


def test_ko_refs_map_back_to_images():
    text = ("us-central1-docker.pkg.dev/p/r/trillian_log_server@sha256:" + "a" * 64 + "\n"
            "us-central1-docker.pkg.dev/p/r/createtree@sha256:" + "b" * 64 + "\n")
    refs = gke._ko_refs(text, {"trillian_log_server": "trillian_log_server", "createtree": "createtree"})
    assert refs["createtree"].endswith("b" * 64)
    with pytest.raises(RunFailed, match="exactly one digest"):
        gke._ko_refs(text, {"ct_server": "ct_server"})


def test_tool_versions_are_read_and_compared():
    assert gke.tool_version("go", "go1.26.8\n") == (1, 26, 8)
    assert gke.tool_version("terraform", '{"terraform_version": "1.11.4", "platform": "linux_amd64"}') == (1, 11, 4)
    assert gke.tool_version("gcloud", '{"Google Cloud SDK": "548.0.0", "bq": "2.1.25"}') == (548, 0, 0)
    assert gke.tool_version(None, "anything") is None
    with pytest.raises(BadInput, match="cannot read its version"):
        gke.tool_version("terraform", "Terraform v1.11.4")
    assert gke.required_go_for_ko() >= (1, 25)


def test_bootstrap_says_what_is_missing_or_too_old(monkeypatch):
    import google.auth
    monkeypatch.setattr(google.auth, "default", lambda *a, **k: (object(), "p"))
    monkeypatch.setattr(gke.shutil, "which", lambda name: f"/usr/bin/{name}")
    answers = {"go": "go1.26.8", "terraform": '{"terraform_version": "1.5.7"}'}
    monkeypatch.setattr(gke, "_run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 0, answers.get(cmd[0], ""), ""))
    with pytest.raises(BadInput, match=r"terraform 1\.5\.7 is too old: 1\.9\.0 or newer is needed"):
        gke.bootstrap(opts(dry_run=False), log=lambda _t: None)
    monkeypatch.setattr(gke.shutil, "which", lambda name: None if name == "gke-gcloud-auth-plugin" else f"/x/{name}")
    answers["terraform"] = '{"terraform_version": "1.11.4"}'
    answers["gcloud"] = '{"Google Cloud SDK": "548.0.0"}'
    with pytest.raises(BadInput, match="gke-gcloud-auth-plugin not found: run `gcloud components install"):
        gke.bootstrap(opts(dry_run=False), log=lambda _t: None)


def test_secrets_never_reach_the_plan(price_book):
    steps = gke.plan(opts())
    text = json.dumps(steps)
    assert "password=" not in text and "<terraform output mysql_password>" not in text
    ex = gke.Executor(dry_run=True)
    ex.run("x", ["tool", "--uri=user:hunter2@tcp(10.0.0.1)"], what="w", timeout=1, secrets=("hunter2",))
    assert ex.steps[0]["cmd"] == ["tool", "--uri=user:****@tcp(10.0.0.1)"]


# ------------------------------------------------------------------------------- CLI


def _cli(*args: str, env=None) -> subprocess.CompletedProcess[str]:
    import os
    return subprocess.run([sys.executable, "-m", "scripts.gke", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def test_cli_dry_run_alone():
    out = _cli("deploy", "--dry-run", "--tier", "small", "--project", "p")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].startswith("  1. [deploy] cost estimate, tier small:")
    assert "terraform -chdir=terraform apply" in out.stdout


def test_cli_bad_tier_exits_2():
    out = _cli("deploy", "--dry-run", "--tier", "huge", "--project", "p")
    assert out.returncode == 2
    assert out.stderr.strip() == "error: unknown tier 'huge' (known: small, medium, large)"


# ------------------------------------------------------------------------------- Secret Manager


def test_secret_version_is_the_name_secret_manager_answers_with():
    """Recorded GET projects/ctbench-offline/secrets/…/versions/latest: the answer carries the project
    NUMBER and the numeric version, and that exact name is what TesseraCT must be given."""
    doc = json.loads((REPO / "tests" / "data" / "gke" / "secretmanager_version.json").read_text())
    asked = "projects/ctbench-offline/secrets/ctb-small-tesseract-signer-private/versions/latest"
    assert spec.parse_secret_version(doc, asked) == \
        "projects/123456789012/secrets/ctb-small-tesseract-signer-private/versions/1"
    assert spec.secret_version_url(asked) == f"https://secretmanager.googleapis.com/v1/{asked}"
    with pytest.raises(RunFailed, match="DISABLED, not ENABLED"):
        spec.parse_secret_version(doc | {"state": "DISABLED"}, asked)
    with pytest.raises(RunFailed, match="unexpected answer"):
        spec.parse_secret_version({"error": {"code": 404}}, asked)
