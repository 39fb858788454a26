"""The GKE target's pure half: options, tier sizing, price estimate, tfvars and manifests.

Everything here is a function of plain data (costs.json, options, Terraform outputs, image digests):
no subprocess, no network, no credentials. scripts/gke.py acts on what these functions return, and
the offline tests render and validate every tier from them.
"""
from __future__ import annotations

import base64
import json
import math
import os
import re
import shlex
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jinja2
from cryptography.hazmat.primitives import serialization

from scripts import costs as costs_mod
from scripts import paths
from scripts.errors import BadInput, RunFailed, one_line

SYSTEMS = ("trillian", "tesseract")
LOADGENS = ("uniform", "native")
DEFAULT_WINDOW_S = 900          # measured window on gke: 15 minutes
DEFAULT_WARMUP_S = 60
NAMESPACE = "ctbench"
PREFIX = "bench"                # CTFE prefix and TesseraCT path prefix, as on the local target
ZONE_SUFFIX = "-a"
K8S_DIR = paths.REPO / "k8s"
# ko images: tools module -> import paths (the pins are the tools/<module>/go.mod of the local target).
KO_IMAGES = {
    "trillian": {"trillian_log_server": "github.com/google/trillian/cmd/trillian_log_server",
                 "trillian_log_signer": "github.com/google/trillian/cmd/trillian_log_signer",
                 "createtree": "github.com/google/trillian/cmd/createtree"},
    "ctgo": {"ct_server": "github.com/google/certificate-transparency-go/trillian/ctfe/ct_server",
             "ct_hammer": "github.com/google/certificate-transparency-go/trillian/integration/ct_hammer"},
    "tesseract": {"tesseract_gcp": "github.com/transparency-dev/tesseract/cmd/tesseract/gcp",
                  "tesseract_hammer": "github.com/transparency-dev/tesseract/internal/hammer"},
}
JOB_GRACE_S = 300               # a load Job may run this long past warmup + window before it fails
START_SLACK_S = 20              # pods report Running before the generator sends: the window starts this much later
TAIL_S = 40                     # load keeps running past the window's end, so its last seconds are loaded too
START_GRACE_S = 600             # image pulls and scheduling before every load pod runs
# Rough wall time around the measured windows, for the estimate shown before anything is created.
SETUP_S = 40 * 60               # terraform apply (Cloud SQL and GKE dominate), images, rollouts
TEARDOWN_S = 20 * 60
PER_SYSTEM_OVERHEAD_S = 5 * 60  # load pods starting, drain, results read back


# ---------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Opts:
    tier: str
    tiers: tuple[str, ...]
    systems: tuple[str, ...]
    qps: float
    duration: float
    warmup: float
    dry_run: bool
    project: str
    region: str
    zone: str
    run_dir: Path
    loadgen: str
    max_in_flight: int
    state_bucket: str

    def for_tier(self, tier: str) -> "Opts":
        return replace(self, tier=tier)


def _number(opts: dict, key: str, default: float) -> float:
    value = opts.get(key)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadInput(f"--{key}: expected a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise BadInput(f"--{key}: {value!r} must be a finite number >= 0")
    return number


def parse_opts(opts: dict[str, Any], costs: dict[str, Any] | None = None) -> Opts:
    """Validate the plain dict from tasks.py. Pure except for reading GOOGLE_CLOUD_PROJECT."""
    costs = costs if costs is not None else costs_mod.load_costs()
    tiers = opts.get("tiers") or [opts.get("tier") or "small"]
    if isinstance(tiers, str):
        tiers = [t for t in tiers.split(",") if t.strip()]
    tiers = tuple(str(t).strip() for t in tiers)
    for tier in tiers:
        costs_mod.check_tier(costs, tier)
    systems = opts.get("systems") or list(SYSTEMS)
    if isinstance(systems, str):
        systems = systems.split(",")
    systems = tuple(s.strip() for s in systems if s.strip())
    for system in systems:
        if system not in SYSTEMS:
            raise BadInput(f"unknown system {system!r} (known: {', '.join(SYSTEMS)})")
    project = (opts.get("project") or os.environ.get("GOOGLE_CLOUD_PROJECT") or "").strip()
    if not project:
        raise BadInput("no Google Cloud project: pass --project or set GOOGLE_CLOUD_PROJECT")
    if not re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]|[a-z][a-z0-9-]*", project):
        raise BadInput(f"--project: {project!r} is not a Google Cloud project id")
    region = (opts.get("region") or costs.get("region") or "us-central1").strip()
    # The harness's own generator (the same work for both systems) unless native hammers are asked for.
    loadgen = str(opts.get("loadgen") or "uniform").strip()
    if loadgen not in LOADGENS:
        raise BadInput(f"--loadgen: unknown value {loadgen!r} (choose from {', '.join(LOADGENS)})")
    qps = _number(opts, "qps", 200)
    if qps <= 0:
        raise BadInput("--qps must be > 0")
    duration = opts.get("duration")
    # The local default (config.DEFAULTS, 60 s) is too short for a cloud run: the gke window is 15
    # minutes unless a duration was given explicitly (None, or the untouched local default, means
    # not given; opts["duration_explicit"] forces the value).
    if duration is None or (not opts.get("duration_explicit") and _is_local_default("duration", duration)):
        duration = DEFAULT_WINDOW_S
    duration = _number({"duration": duration}, "duration", DEFAULT_WINDOW_S)
    if duration <= 0:
        raise BadInput("--duration must be > 0")
    return Opts(
        tier=tiers[0], tiers=tiers, systems=systems, qps=qps, duration=duration,
        warmup=_number(opts, "warmup", DEFAULT_WARMUP_S), dry_run=bool(opts.get("dry_run")),
        project=project, region=region, zone=(opts.get("zone") or f"{region}{ZONE_SUFFIX}"),
        run_dir=Path(opts.get("run_dir") or paths.RESULTS_DIR), loadgen=loadgen,
        max_in_flight=int(_number(opts, "max_in_flight", 1000)),
        state_bucket=(opts.get("state_bucket") or os.environ.get("CTB_TFSTATE_BUCKET")
                      or f"{project}-ctbench-tfstate"),
    )


def _is_local_default(key: str, value: Any) -> bool:
    from scripts import config
    default = config.DEFAULTS.get(key)
    if isinstance(default, str):
        return value == default
    try:
        return float(value) == float(default)
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------------- sizing


def _gke_reserved_cpu_m(vcpu: int) -> float:
    """GKE's documented kubelet CPU reservation: 6% of the first core, 1% of the next, 0.5% of the
    next 2, 0.25% of the rest."""
    cores = [0.06, 0.01, 0.005, 0.005] + [0.0025] * max(0, vcpu - 4)
    return 1000 * sum(cores[:vcpu])


def _gke_reserved_mem_gib(ram: float) -> float:
    """GKE's documented memory reservation (25% of the first 4 GiB, 20% of the next 4, 10% of the
    next 8, 6% of the next 112, 2% above) plus the 100 MiB eviction threshold."""
    bands = [(4, 0.25), (4, 0.20), (8, 0.10), (112, 0.06), (math.inf, 0.02)]
    left, reserved = ram, 0.0
    for size, share in bands:
        take = min(left, size)
        reserved += take * share
        left -= take
        if left <= 0:
            break
    return reserved + 100 / 1024


DAEMONSET_CPU_M = 400           # GKE's per-node agents (logging, metrics, Dataplane V2, CSI)
DAEMONSET_MEM_GIB = 0.75
KUBE_SYSTEM_CPU_M = 600         # kube-dns, metrics-server, konnectivity: they land on the untainted loadgen pool
KUBE_SYSTEM_MEM_GIB = 1.0


def _usable(costs: dict, pool: dict, *, system_pods: bool) -> tuple[int, float]:
    shape = costs["machine_types"][pool["machine_type"]]
    cpu = shape["vcpu"] * 1000 - _gke_reserved_cpu_m(shape["vcpu"]) - DAEMONSET_CPU_M
    mem = shape["ram_gib"] - _gke_reserved_mem_gib(shape["ram_gib"]) - DAEMONSET_MEM_GIB
    if system_pods:
        cpu -= KUBE_SYSTEM_CPU_M
        mem -= KUBE_SYSTEM_MEM_GIB
    return int(cpu), mem


def _res(cpu_m: float, mem_gib: float, cpu_limit_m: float, replicas: int = 1) -> dict[str, Any]:
    return {"cpu": f"{int(cpu_m)}m", "memory": f"{int(mem_gib * 1024)}Mi", "cpu_limit": f"{int(cpu_limit_m)}m",
            "replicas": replicas, "cpu_m": int(cpu_m), "memory_mib": int(mem_gib * 1024)}


def workload_resources(costs: dict[str, Any], tier: str) -> dict[str, dict[str, Any]]:
    """Requests/limits and replicas per workload, derived from the tier's node pools in costs.json.

    Trillian's pool: log server and CTFE scale with the nodes, the signer is one (no etcd); each pod
    requests 30% of a node, so any placement of 2 log servers + 2 CTFEs + 1 signer on 2 nodes fits.
    TesseraCT's pool: one replica per node, 90% of the node. Loadgen pool: vCPU/2 pods per node.
    CPU limits are a whole node (burst), memory limit = request (memory is not compressible).
    """
    costs_mod.check_tier(costs, tier)
    pools = costs["tiers"][tier]["gke"]["node_pools"]
    out: dict[str, dict[str, Any]] = {}

    t_cpu, t_mem = _usable(costs, pools["trillian"], system_pods=False)
    t_nodes = pools["trillian"]["nodes"]
    out["trillian_log_server"] = _res(0.3 * t_cpu, 0.3 * t_mem, t_cpu, replicas=t_nodes)
    out["ct_server"] = _res(0.3 * t_cpu, 0.3 * t_mem, t_cpu, replicas=t_nodes)
    out["trillian_log_signer"] = _res(0.3 * t_cpu, 0.3 * t_mem, t_cpu, replicas=1)

    x_cpu, x_mem = _usable(costs, pools["tesseract"], system_pods=False)
    out["tesseract"] = _res(0.9 * x_cpu, 0.9 * x_mem, x_cpu, replicas=pools["tesseract"]["nodes"])

    l_pool = pools["loadgen"]
    l_cpu, l_mem = _usable(costs, l_pool, system_pods=True)
    per_node = max(1, costs["machine_types"][l_pool["machine_type"]]["vcpu"] // 2)
    pods = per_node * l_pool["nodes"]
    out["loadgen"] = _res(0.95 * l_cpu / per_node, 0.9 * l_mem / per_node, l_cpu / per_node, replicas=pods)
    return out


# ---------------------------------------------------------------------------- tfvars and the estimate


def tfvars_text(costs: dict[str, Any], tier: str) -> str:
    """terraform/tiers/<tier>.tfvars, generated from costs.json (tests check the files match)."""
    costs_mod.check_tier(costs, tier)
    spec = costs["tiers"][tier]
    lines = [
        f"# Generated from costs.json tiers.{tier} by `python -m scripts.gke tfvars`; do not edit by hand.",
        f'tier = "{tier}"',
        "",
        "node_pools = {",
    ]
    for name in ("trillian", "tesseract", "loadgen"):
        pool = spec["gke"]["node_pools"][name]
        lines.append(f'  {name:<9} = {{ machine_type = "{pool["machine_type"]}", nodes = {pool["nodes"]}, '
                     f'disk_gib = {pool["disk_gib"]} }}')
    lines += [
        "}",
        "",
        f'cloudsql_tier            = "{spec["cloudsql"]["tier"]}"',
        f'cloudsql_storage_gib     = {spec["cloudsql"]["storage_gib"]}',
        f'spanner_processing_units = {spec["spanner"]["processing_units"]}',
    ]
    return "\n".join(lines) + "\n"


def estimate_seconds(o: Opts) -> float:
    """Billable wall time assumed for one tier: setup + per system (warmup + window + overhead) + teardown."""
    return SETUP_S + len(o.systems) * (o.warmup + o.duration + PER_SYSTEM_OVERHEAD_S) + TEARDOWN_S


def estimate_text(costs: dict[str, Any], o: Opts) -> str:
    seconds = estimate_seconds(o)
    est = costs_mod.estimate(costs, o.tier, seconds)
    parts = ", ".join(f"{s} {v['usd_per_hour']:.4f} USD/h" for s, v in est["systems"].items())
    return (f"cost estimate, tier {o.tier}: {est['usd_per_hour']:.4f} USD/h ({parts}) x {est['hours']:.3f} h "
            f"= {est['usd']:.2f} USD (costs.json revision {costs['revision']}; assumes {SETUP_S // 60} min setup "
            f"+ {len(o.systems)} x ({o.warmup:g} s warmup + {o.duration:g} s window + "
            f"{PER_SYSTEM_OVERHEAD_S // 60} min) + {TEARDOWN_S // 60} min teardown)")


# ---------------------------------------------------------------------------- manifests


def _jinja() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(K8S_DIR)), undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                              autoescape=False)


def placeholder_outputs(project: str, tier: str, region: str = "us-central1") -> dict[str, Any]:
    """What `terraform output -json` yields, with recognisable placeholders (dry run, offline tests)."""
    name = f"ctb-{tier}"
    return {
        "cluster_name": f"{name}-gke",
        "cluster_location": f"{region}{ZONE_SUFFIX}",
        "image_repository": f"{region}-docker.pkg.dev/{project}/{name}-images",
        "mysql_private_ip": "10.99.0.3",
        "mysql_server_name": f"placeholder.{region}.sql.goog",
        "mysql_server_ca_pem": "-----BEGIN CERTIFICATE-----\nPLACEHOLDER\n-----END CERTIFICATE-----\n",
        "mysql_database": "trillian",
        "mysql_user": "trillian",
        "mysql_password": "<terraform output mysql_password>",
        "cloudsql_instance": f"{name}-mysql",
        "spanner_instance": f"{name}-spanner",
        "spanner_db_path": f"projects/{project}/instances/{name}-spanner/databases/tesseract",
        "spanner_antispam_db_path": f"projects/{project}/instances/{name}-spanner/databases/antispam",
        "log_bucket": f"{project}-{name}-log",
        "results_bucket": f"{project}-{name}-results",
        "tesseract_private_key_secret_version": f"projects/{project}/secrets/{name}-tesseract-signer-private/versions/1",
        "tesseract_public_key_secret_version": f"projects/{project}/secrets/{name}-tesseract-signer-public/versions/1",
        "tesseract_public_key_pem": "<terraform output tesseract_public_key_pem>",
        "ctfe_private_key_pem": "<terraform output ctfe_private_key_pem>",
        "ctfe_public_key_pem": "<terraform output ctfe_public_key_pem>",
        "service_accounts": {s: f"ctbench-{s}@{project}.iam.gserviceaccount.com"
                             for s in ("nodes", "trillian", "tesseract", "loadgen")},
    }


def placeholder_images(repo: str) -> dict[str, str]:
    zero = "sha256:" + "0" * 64
    images = {name: f"{repo}/{name}@{zero}" for module in KO_IMAGES.values() for name in module}
    images["loadgen"] = f"{repo}/loadgen@{zero}"
    images["mysql_client"] = f"docker.io/library/mysql@{zero}"
    return images


_NUMERIC_VERSION = re.compile(r"^projects/[^/]+/secrets/[^/]+/versions/\d+$")


def check_secret_version(name: str) -> str:
    """TesseraCT compares the secret name it asked for with the one Secret Manager answers with: only a
    numeric version works (`latest` or a bare secret fails at start-up)."""
    if not _NUMERIC_VERSION.match(name):
        raise BadInput(f"secret version {name!r} is not projects/P/secrets/S/versions/N with N numeric")
    return name


SECRET_MANAGER_API = "https://secretmanager.googleapis.com/v1"


def secret_version_url(name: str) -> str:
    return f"{SECRET_MANAGER_API}/{name}"


def parse_secret_version(doc: dict[str, Any], asked: str) -> str:
    """A Secret Manager SecretVersion (GET …/versions/N or …/versions/latest): the canonical name,
    which is what TesseraCT will be answered with, so what it must be given. Only ENABLED versions."""
    try:
        name, state = doc["name"], doc["state"]
    except (KeyError, TypeError):
        raise RunFailed(f"Secret Manager: unexpected answer for {asked}") from None
    if state != "ENABLED":
        raise RunFailed(f"Secret Manager: {name} is {state}, not ENABLED")
    return check_secret_version(name)


# The static-ct-api origin: the host and path the load generators submit to, so TesseraCT's
# per-request origin check passes (it compares hostname + path, port stripped) instead of logging a
# warning for every add-chain.
TESSERACT_ORIGIN = f"tesseract.{NAMESPACE}.svc/{PREFIX}"


def manifest_values(costs: dict[str, Any], o: Opts, outputs: dict[str, Any], images: dict[str, str]) -> dict[str, Any]:
    """Everything the templates need, from plain data (no cloud calls)."""
    from scripts import deploy as local
    return {
        "namespace": NAMESPACE,
        "tier": o.tier,
        "prefix": PREFIX,
        "images": images,
        "sa": {s: outputs["service_accounts"][s] for s in ("trillian", "tesseract", "loadgen")},
        "res": workload_resources(costs, o.tier),
        "trillian": {
            "mysql_server_name": outputs["mysql_server_name"],
            "quota_system": "mysql",
            "signer_flags": dict(local.SIGNER_FLAGS),
        },
        "tesseract": {
            "origin": TESSERACT_ORIGIN,
            "bucket": outputs["log_bucket"],
            "spanner_db_path": outputs["spanner_db_path"],
            "spanner_antispam_db_path": outputs["spanner_antispam_db_path"],
            "private_key_secret_version": check_secret_version(outputs["tesseract_private_key_secret_version"]),
            "public_key_secret_version": check_secret_version(outputs["tesseract_public_key_secret_version"]),
            # The local target's knobs, minus an empty rate limit (the flag rejects "").
            "flags": {k: v for k, v in local.TESSERACT_FLAGS.items() if v != ""},
        },
    }


MANIFESTS = ("namespace", "trillian", "trillian-setup", "ctfe", "tesseract")


def render(name: str, values: dict[str, Any]) -> str:
    return _jinja().get_template(f"{name}.yaml.j2").render(**values)


def render_all(values: dict[str, Any], load_values: list[dict[str, Any]] = ()) -> dict[str, str]:
    """Every manifest of a deployment (and the given load Jobs), name -> YAML text."""
    out = {name: render(name, values) for name in MANIFESTS}
    for load in load_values:
        out[load["job_name"]] = render("loadgen-job", {**values, "load": load})
    return out


def offline_manifests(costs: dict[str, Any], tier: str, project: str = "ctbench-offline",
                      region: str = "us-central1") -> dict[str, str]:
    """Every manifest of a tier rendered with placeholder outputs and digests, including the load Jobs
    for both systems and both generators: what the offline validators check."""
    o = parse_opts({"tier": tier, "project": project, "region": region, "dry_run": True}, costs)
    outputs = placeholder_outputs(project, tier, region)
    values = manifest_values(costs, o, outputs, placeholder_images(outputs["image_repository"]))
    loads = [load_values(costs, replace(o, loadgen=gen), system, outputs, f"offline-{gen}")
             for gen in LOADGENS for system in SYSTEMS]
    return render_all(values, loads)


def load_values(costs: dict[str, Any], o: Opts, system: str, outputs: dict[str, Any], run_id: str) -> dict[str, Any]:
    """One load Job: the same offered rate, warmup and window for either system (METHOD rule 4)."""
    from scripts import hammer as local_hammer
    res = workload_resources(costs, o.tier)["loadgen"]
    url = (f"http://ct-server.{NAMESPACE}.svc:6962/{PREFIX}/ct/v1/add-chain" if system == "trillian"
           else f"http://tesseract.{NAMESPACE}.svc:6962/{PREFIX}/ct/v1/add-chain")
    parallelism = res["replicas"]
    chains = 1
    # The generator runs warmup + slack + window + tail; the harness measures only the window.
    run_s = int(o.warmup + START_SLACK_S + o.duration + TAIL_S)
    if o.loadgen == "native" and system == "trillian":
        # ct_hammer: processes x ops/s x mean chains per op ~= qps, as on the local target.
        parallelism, rate = local_hammer.ct_hammer_plan(o.qps)
        chains = local_hammer.CT_HAMMER_CHAINS_PER_OP
        rate_per_pod: float = rate
        operations = math.ceil(rate * run_s)
    elif o.loadgen == "native":
        parallelism = 1
        rate_per_pod = math.ceil(o.qps)
        operations = math.ceil(o.qps * run_s)
    else:
        rate_per_pod = round(o.qps / parallelism, 3)
        operations = 0
    if o.loadgen == "native" and system == "tesseract":
        writers = max(8, math.ceil(o.qps * local_hammer.TESSERACT_WRITERS_PER_QPS))
    else:
        writers = 0
    return {
        "system": system,
        "generator": o.loadgen,
        "job_name": f"load-{system}-{run_id}".lower()[:63],
        "run_id": run_id,
        "url": url,
        "parallelism": parallelism,
        "rate_per_pod": rate_per_pod,
        "offered_qps": o.qps,
        "duration_s": int(o.duration),
        "warmup_s": int(o.warmup),
        "run_s": run_s,
        "deadline_s": run_s + START_GRACE_S + JOB_GRACE_S,
        "max_in_flight_per_pod": max(1, o.max_in_flight // parallelism),
        "results_bucket": outputs["results_bucket"],
        "log_bucket": outputs["log_bucket"],
        "origin": TESSERACT_ORIGIN,
        "operations": operations,
        "max_parallel_chains": chains,
        "num_writers": writers,
        "serial_offset": int(time.time() * 1000) if not o.dry_run else 0,
    }


# ---------------------------------------------------------------------------- secrets and configs built from Terraform outputs


SENSITIVE_OUTPUTS = {"mysql_password", "ctfe_private_key_pem"}


def k8s_object(kind: str, name: str, data: dict[str, str]) -> str:
    """A Secret/ConfigMap manifest as JSON (valid YAML), so no value is ever on a command line."""
    key = "stringData" if kind == "Secret" else "data"
    doc = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": NAMESPACE,
                                                         "labels": {"app.kubernetes.io/part-of": "ctbench"}},
           key: data}
    if kind == "Secret":
        doc["type"] = "Opaque"
    return json.dumps(doc)


def ctfe_log_config(tree_id: int, key_pem: str, pub_pem: str) -> str:
    """LogConfigSet for ct_server with the key inline (keyspb.PrivateKey{der}); inside a Secret only."""
    from scripts import deploy as local
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise RunFailed(f"terraform output ctfe_private_key_pem is not an unencrypted PEM key ({one_line(exc)})") from None
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pub = serialization.load_pem_public_key(pub_pem.encode()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return (
        "config {\n"
        f"  log_id: {tree_id}\n"
        f'  prefix: "{PREFIX}"\n'
        '  roots_pem_file: "/etc/ctfe/roots.pem"\n'
        "  private_key {\n"
        "    [type.googleapis.com/keyspb.PrivateKey] {\n"
        f'      der: "{local.textproto_bytes(der)}"\n'
        "    }\n"
        "  }\n"
        f'  public_key {{ der: "{local.textproto_bytes(pub)}" }}\n'
        "  max_merge_delay_sec: 86400\n"
        "  expected_merge_delay_sec: 120\n"
        "}\n"
    )


def mysql_option_file(tf_out: dict[str, Any]) -> str:
    """Option file for the mysql client in job/trillian-schema: TLS verified against the server CA."""
    return ("[client]\n"
            f"host={tf_out['mysql_private_ip']}\n"
            f"user={tf_out['mysql_user']}\n"
            f"password={tf_out['mysql_password']}\n"
            "ssl-mode=VERIFY_CA\n"
            "ssl-ca=/etc/mysql-tls/ca.pem\n"
            "[mysql]\n"
            f"database={tf_out['mysql_database']}\n")


def trillian_flag_file(tf_out: dict[str, Any]) -> str:
    """Trillian's --config flag file: the DSN with the password stays out of the command line.
    (Trillian appends ?tls=custom itself when --mysql_tls_ca is set, so the DSN has no parameters.)"""
    dsn = (f"{tf_out['mysql_user']}:{tf_out['mysql_password']}@tcp({tf_out['mysql_private_ip']}:3306)/"
           f"{tf_out['mysql_database']}")
    if "$" in dsn:   # Trillian runs os.ExpandEnv on every flag-file word, quoted or not
        raise RunFailed("the MySQL DSN contains '$', which Trillian's flag file would expand; "
                        "terraform's random_password must stay alphanumeric (special = false)")
    return f"--mysql_uri={shlex.quote(dsn)}\n"


def der_b64(pub_pem: str) -> str:
    if pub_pem.startswith("<"):
        return pub_pem
    pub = serialization.load_pem_public_key(pub_pem.encode()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(pub).decode()
