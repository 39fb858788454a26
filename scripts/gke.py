"""The GKE target: Terraform for the tier, ko images, manifests, in-cluster load, Cloud Monitoring.

Every step that touches the cloud goes through one `Executor`, which either runs it or — with
`dry_run` — only records it. `plan(opts)` is therefore the real sequence, run against placeholder
values: the same functions build the same commands in the same order.

Entry points (tasks.py calls them with a plain dict `opts`: tier, tiers, systems, qps, duration,
warmup, dry_run, project, region, run_dir, and optionally loadgen, zone, state_bucket):
bootstrap, deploy, smoke, bench -> dict, metrics -> dict, down, ci, plan -> list[dict], print_plan.
Each raises BadInput before anything is created for an unknown tier, a missing project id or
missing Google default credentials, and deploy prints the cost estimate first (also in a dry run).

`python -m scripts.gke STEP --dry-run --tier small --project p` prints a step's plan alone.
The pure half (options, sizing, estimate, tfvars, manifests) is scripts/gke_spec.py.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from scripts import costs as costs_mod
from scripts import paths, proc
from scripts.errors import BadInput, HarnessError, RunFailed, cli_entry, one_line
from scripts.gke_spec import (
    ctfe_log_config,
    DEFAULT_WARMUP_S,
    DEFAULT_WINDOW_S,
    der_b64,
    estimate_text,
    K8S_DIR,
    k8s_object,
    KO_IMAGES,
    load_values,
    LOADGENS,
    manifest_values,
    mysql_option_file,
    NAMESPACE,
    Opts,
    parse_opts,
    parse_secret_version,
    placeholder_images,
    placeholder_outputs,
    PREFIX,
    render,
    secret_version_url,
    SENSITIVE_OUTPUTS,
    START_SLACK_S,
    START_GRACE_S,
    TESSERACT_ORIGIN,
    tfvars_text,
    trillian_flag_file,
    workload_resources,
)

# The one door for subprocesses (timeout, raise on failure, exact command logged, secrets masked).
_run = proc.run

STEPS = ("bootstrap", "deploy", "smoke", "bench", "metrics", "down", "ci")
TF_DIR = paths.REPO / "terraform"
LOADGEN_DOCKERFILE = K8S_DIR / "loadgen.Dockerfile"
MIN_TERRAFORM = (1, 9, 0)
MIN_GCLOUD = (400, 0, 0)        # the GKE auth plugin flow (kubectl >= 1.26) needs a 2022+ Cloud CLI

# Third-party images, resolved to digests at deploy time (crane digest) and recorded.
BASE_IMAGES = {
    "ko_base": "cgr.dev/chainguard/static:latest",          # ko's default base: non-root uid 65532
    "mysql_client": "docker.io/library/mysql:8.4",          # loads Trillian's schema into Cloud SQL
    "python": "docker.io/library/python:3.11-slim",         # base of the load generator image
}
NATIVE_ONLY = {"ct_hammer", "tesseract_hammer"}

# Deadlines (seconds). Waits poll a condition until these, never sleep a fixed time.
T_TERRAFORM = 90 * 60
T_KO = 45 * 60
T_DOCKER = 30 * 60
T_KUBECTL = 120
T_ROLLOUT = 15 * 60
T_JOB_SETUP = 10 * 60
T_GCLOUD = 300
MONITORING_LAG_S = 240          # Cloud Monitoring points arrive minutes after the fact
SAMPLE_EVERY_S = 5.0            # the signed tree is read this often during a window
STABILITY_BUCKET_S = 30.0       # integration rate per slice of this length: the window's stability (CoV)


# ============================================================================ guards


def check_credentials() -> Any:
    """Google application default credentials, or BadInput saying how to get them."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError
    try:
        credentials, _project = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    except DefaultCredentialsError as exc:
        raise BadInput("no Google default credentials: run `gcloud auth application-default login` "
                       f"(or use Workload Identity Federation in CI) ({one_line(exc)})") from None
    return credentials


def _prepare(opts: dict[str, Any]) -> tuple[Opts, dict[str, Any]]:
    """Validate everything that can be validated before anything is created."""
    costs = costs_mod.load_costs()
    o = parse_opts(opts, costs)
    if not o.dry_run:
        check_credentials()
    return o, costs


# ============================================================================ execution


@dataclass
class Executor:
    """Runs or (dry run) records every external step, in order; the record is the plan."""

    dry_run: bool
    log: Callable[[str], None] = print
    steps: list[dict[str, Any]] = field(default_factory=list)
    session: Any = None

    def _record(self, phase: str, tool: str, what: str, **extra: Any) -> dict[str, Any]:
        step = {"n": len(self.steps) + 1, "phase": phase, "tool": tool, "what": what, **extra}
        self.steps.append(step)
        return step

    def run(self, phase: str, cmd: list[str], *, what: str, timeout: float, env: dict | None = None,
            cwd: Path | None = None, input: str | None = None, check: bool = True, secrets: tuple = (),
            dry_stdout: str = "") -> subprocess.CompletedProcess[str]:
        shown = [_mask(c, secrets) for c in cmd]
        cwd = cwd or paths.REPO   # repo-relative paths (terraform -chdir, Dockerfile) resolve from here
        self._record(phase, Path(cmd[0]).name, what, cmd=shown, timeout=timeout,
                     env={k: v for k, v in (env or {}).items() if k != "KUBECONFIG"} or None,
                     cwd=None if cwd == paths.REPO else str(cwd.relative_to(paths.REPO)))
        if self.dry_run:
            return subprocess.CompletedProcess(shown, 0, dry_stdout, "")
        return _run(cmd, timeout=timeout, env=env, cwd=cwd, check=check, input=input, secrets=secrets)

    def api(self, phase: str, method: str, url: str, *, what: str, call: Callable[[], Any], dry_result: Any) -> Any:
        self._record(phase, "api", what, method=method, url=url)
        if self.dry_run:
            return dry_result
        return call()

    def note(self, phase: str, what: str) -> None:
        self._record(phase, "note", what)
        if not self.dry_run:       # a dry run shows it as a plan step
            self.log(what)

    def timed(self, phase: str, what: str) -> None:
        """Record a timed part of the run (warmup, measured window): what a dry run shows for it."""
        self._record(phase, "clock", what)

    def pause_until(self, phase: str, deadline: float, what: str) -> None:
        """Let the clock run to a planned instant (a measurement window boundary), not a readiness wait."""
        self.timed(phase, what)
        if not self.dry_run:
            while (left := deadline - time.time()) > 0:
                time.sleep(min(left, 5.0))


def _mask(text: str, secrets: tuple) -> str:
    text = str(text).replace(f"{paths.REPO}/", "")  # repo-relative in the plan: it reads the same anywhere
    for secret in secrets:
        if secret:
            text = text.replace(secret, proc.MASK)
    return text


@dataclass
class Cluster:
    """Values one tier's steps share: options, outputs, images, paths."""

    o: Opts
    costs: dict[str, Any]
    ex: Executor
    outputs: dict[str, Any] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)
    tree_id: int | None = None

    @property
    def kubeconfig(self) -> Path:
        return paths.STATE_DIR / f"gke-{self.o.tier}.kubeconfig"

    @property
    def state_file(self) -> Path:
        return paths.STATE_DIR / f"gke-{self.o.tier}.json"

    def kenv(self) -> dict[str, str]:
        return {"KUBECONFIG": str(self.kubeconfig)}

    def kubectl(self, phase: str, args: list[str], *, what: str, timeout: float = T_KUBECTL,
                input: str | None = None, secrets: tuple = (), dry_stdout: str = "", check: bool = True):
        return self.ex.run(phase, ["kubectl", "-n", NAMESPACE, *args], what=what, timeout=timeout,
                           env=self.kenv(), input=input, secrets=secrets, dry_stdout=dry_stdout, check=check)

    def save(self) -> None:
        if self.ex.dry_run:
            return
        public = {k: v for k, v in self.outputs.items() if k not in SENSITIVE_OUTPUTS}
        paths.STATE_DIR.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps({"target": "gke", "tier": self.o.tier, "project": self.o.project,
                                               "region": self.o.region, "zone": self.o.zone,
                                               "state_bucket": self.o.state_bucket, "outputs": public,
                                               "images": self.images, "tree_id": self.tree_id}, indent=2) + "\n")

    def load_saved(self) -> bool:
        if self.ex.dry_run or not self.state_file.exists():
            return False
        doc = json.loads(self.state_file.read_text())
        self.outputs.update(doc.get("outputs", {}))
        self.images.update(doc.get("images", {}))
        self.tree_id = doc.get("tree_id")
        return True


# ---------------------------------------------------------------------------- terraform


def _tf(*args: str) -> list[str]:
    return ["terraform", f"-chdir={TF_DIR.relative_to(paths.REPO)}", *args]


def tf_vars(o: Opts) -> list[str]:
    return [f"-var-file=tiers/{o.tier}.tfvars", f"-var=project_id={o.project}", f"-var=region={o.region}",
            f"-var=zone={o.zone}"]


def terraform_init(cl: Cluster, phase: str) -> None:
    cl.ex.run(phase, _tf("init", "-input=false", "-reconfigure", f"-backend-config=bucket={cl.o.state_bucket}",
                         f"-backend-config=prefix=ctbench/{cl.o.tier}"),
              what=f"terraform init: remote state gs://{cl.o.state_bucket}/ctbench/{cl.o.tier}", timeout=600,
              env=_tf_env(), cwd=None)


def _tf_env() -> dict[str, str]:
    return {"TF_IN_AUTOMATION": "1"}


def terraform_outputs(cl: Cluster, phase: str) -> dict[str, Any]:
    proc_ = cl.ex.run(phase, _tf("output", "-json"), what="terraform output -json (cluster, database, bucket, key versions)",
                      timeout=120, env=_tf_env(),
                      dry_stdout=json.dumps({k: {"value": v} for k, v in
                                             placeholder_outputs(cl.o.project, cl.o.tier, cl.o.region).items()}))
    try:
        raw = json.loads(proc_.stdout)
        return {k: v["value"] for k, v in raw.items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise RunFailed(f"terraform output -json: unreadable ({one_line(exc)})") from None


# ---------------------------------------------------------------------------- steps


def resolve_secret_version(cl: Cluster, phase: str, name: str) -> str:
    """Ask Secret Manager for the version (numeric or `latest`) and use the name it answers with:
    TesseraCT rejects any other spelling (it compares the two), including project id vs number."""
    url = secret_version_url(name)

    def call():
        resp = cl.ex.session.get(url, timeout=30)
        if resp.status_code != 200:
            raise RunFailed(f"Secret Manager: HTTP {resp.status_code} for {name}")
        return resp.json()
    doc = cl.ex.api(phase, "GET", url, what=f"resolve {name.rsplit('/secrets/', 1)[-1]} to its numeric version",
                    call=call, dry_result={"name": name, "state": "ENABLED"})
    return parse_secret_version(doc, name)


def _module_dir(cl: Cluster, phase: str, tools_module: str, module_path: str) -> Path:
    out = cl.ex.run(phase, ["go", "-C", f"tools/{tools_module}", "list", "-m", "-f", "{{.Dir}}", module_path],
                    what=f"locate the pinned {module_path} in the Go module cache", timeout=300,
                    env={"GOFLAGS": "-mod=readonly"}, cwd=paths.REPO,
                    dry_stdout=f"<GOMODCACHE>/{module_path}@<pin>").stdout.strip()
    return Path(out)


def _digest(cl: Cluster, phase: str, ref: str) -> str:
    """name@sha256:… for a tag, resolved now and recorded (third-party images are pinned per run)."""
    name = ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref
    out = cl.ex.run(phase, [str(paths.BIN_DIR / "crane"), "digest", ref], what=f"resolve {ref} to a digest",
                    timeout=120, dry_stdout="sha256:" + "0" * 64).stdout.strip()
    if not out.startswith("sha256:"):
        raise RunFailed(f"crane digest {ref}: unexpected answer {out[:80]!r}")
    return f"{name}@{out}"


def build_images(cl: Cluster, phase: str = "deploy") -> dict[str, str]:
    repo = cl.outputs["image_repository"]
    images: dict[str, str] = {}
    cl.ex.run(phase, ["gcloud", "auth", "configure-docker", repo.split("/", 1)[0], "--quiet"],
              what="let ko and docker push to the tier's Artifact Registry", timeout=T_GCLOUD)
    base = _digest(cl, phase, BASE_IMAGES["ko_base"])
    for module, wanted in KO_IMAGES.items():
        names = [n for n in wanted if cl.o.loadgen == "native" or n not in NATIVE_ONLY]
        if not names:
            continue
        refs_file = paths.STATE_DIR / f"ko-{module}.refs"
        # -B: image name = last import path element; cwd = the tools module, so the local target's pins apply.
        cmd = [str(paths.BIN_DIR / "ko"), "build", "-B", "--platform=linux/amd64", "--sbom=none",
               f"--tags=ctbench-{cl.o.tier}", f"--image-refs={refs_file}", *[wanted[n] for n in names]]
        cl.ex.run(phase, cmd, what=f"ko build {', '.join(names)} at the pins of tools/{module}/go.mod",
                  timeout=T_KO, cwd=paths.TOOLS_DIR / module,
                  env={"KO_DOCKER_REPO": repo, "KO_DEFAULTBASEIMAGE": base, "GOFLAGS": "-mod=readonly",
                       "CGO_ENABLED": "0"})
        refs = (placeholder_images(repo) if cl.ex.dry_run else
                _ko_refs(refs_file.read_text(), {n: wanted[n].rsplit("/", 1)[-1] for n in names}))
        images.update({n: refs[n] for n in names})
    if cl.o.loadgen == "uniform":
        python = _digest(cl, phase, BASE_IMAGES["python"])
        tag = f"{repo}/loadgen:ctbench-{cl.o.tier}"
        cl.ex.run(phase, ["docker", "build", "-f", str(LOADGEN_DOCKERFILE.relative_to(paths.REPO)),
                          f"--build-arg=BASE_IMAGE={python}", "-t", tag, "."],
                  what="build the harness's load generator image", timeout=T_DOCKER, cwd=paths.REPO)
        cl.ex.run(phase, ["docker", "push", tag], what="push the load generator image", timeout=T_DOCKER)
        images["loadgen"] = _digest(cl, phase, tag)
    else:
        images["loadgen"] = "(not used: native hammers)"
    images["mysql_client"] = _digest(cl, phase, BASE_IMAGES["mysql_client"])
    images["ko_base"] = base
    return images


def _ko_refs(text: str, basenames: dict[str, str]) -> dict[str, str]:
    """Map ko's --image-refs lines (repo/name@sha256:…) back to our image keys."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    out = {}
    for key, base in basenames.items():
        match = [line for line in lines if line.split("@", 1)[0].rsplit("/", 1)[-1].split(":")[0] == base]
        if len(match) != 1 or "@sha256:" not in match[0]:
            raise RunFailed(f"ko did not report exactly one digest for {base}")
        out[key] = match[0]
    return out


def _pki_files(cl: Cluster) -> dict[str, Any]:
    """The harness test PKI (roots for both logs, intermediate for the load generators)."""
    if cl.ex.dry_run:
        return {"roots": "<PKI roots.pem>", "intermediate": "<PKI intermediate.pem>",
                "intermediate_key": "<PKI intermediate.key.pem>", "pki": None}
    from scripts import pki
    layout, _regenerated = pki.ensure()
    return {"roots": layout.roots.read_text(), "intermediate": layout.intermediate.read_text(),
            "intermediate_key": layout.intermediate_key.read_text(), "pki": layout}


def _wait_job(cl: Cluster, phase: str, job: str, deadline_s: float, *, completions: int = 1) -> dict[str, Any]:
    """Poll the Job until Complete or Failed, or fail at the deadline."""
    what = f"wait for job/{job}: Complete or Failed within {deadline_s:g}s"
    if cl.ex.dry_run:
        cl.kubectl(phase, ["get", f"job/{job}", "-o", "json"], what=what)
        return {"status": {"succeeded": completions}}
    end = time.monotonic() + deadline_s
    while True:
        doc = json.loads(cl.kubectl(phase, ["get", f"job/{job}", "-o", "json"], what=what).stdout)
        conditions = {c["type"]: c for c in doc.get("status", {}).get("conditions", []) if c.get("status") == "True"}
        if "Complete" in conditions:
            return doc
        if "Failed" in conditions:
            c = conditions["Failed"]
            raise RunFailed(f"job/{job} failed: {c.get('reason', '')} {c.get('message', '')}".strip())
        if time.monotonic() > end:
            raise RunFailed(f"job/{job} not finished after {deadline_s:g}s")
        time.sleep(5)


def _rollout(cl: Cluster, phase: str, deployment: str) -> None:
    cl.kubectl(phase, ["rollout", "status", f"deployment/{deployment}", f"--timeout={T_ROLLOUT}s"],
               what=f"wait for deployment/{deployment} to be ready (readiness probes)", timeout=T_ROLLOUT + 30)


def deploy_tier(cl: Cluster) -> None:
    o, ex, ph = cl.o, cl.ex, "deploy"
    ex.note(ph, estimate_text(cl.costs, o))
    terraform_init(cl, ph)
    ex.run(ph, _tf("apply", "-input=false", "-auto-approve", "-lock-timeout=300s", *tf_vars(o)),
           what=f"terraform apply: VPC, GKE with 3 pools, Cloud SQL, Spanner, buckets, keys ({o.tier})",
           timeout=T_TERRAFORM, env=_tf_env())
    cl.outputs = terraform_outputs(cl, ph)
    secrets = (cl.outputs["mysql_password"],)
    cl.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    ex.run(ph, ["gcloud", "container", "clusters", "get-credentials", cl.outputs["cluster_name"],
                f"--location={cl.outputs['cluster_location']}", f"--project={o.project}"],
           what="kubeconfig for this cluster only (own KUBECONFIG file)", timeout=T_GCLOUD, env=cl.kenv())
    cl.images = build_images(cl, ph)
    for key in ("tesseract_private_key_secret_version", "tesseract_public_key_secret_version"):
        cl.outputs[key] = resolve_secret_version(cl, ph, cl.outputs[key])
    values = manifest_values(cl.costs, o, cl.outputs, cl.images)
    cl.save()

    cl.kubectl(ph, ["apply", "-f", "-"], what="namespace, service accounts (Workload Identity), network policies",
               input=render("namespace", values))
    tf_out = cl.outputs
    cl.kubectl(ph, ["apply", "-f", "-"], what="Secret trillian-mysql (Trillian flag file with the DSN, mysql "
               "option file, server CA; values hidden)",
               input=k8s_object("Secret", "trillian-mysql", {
                   "trillian.flags": trillian_flag_file(tf_out), "client.cnf": mysql_option_file(tf_out),
                   "ca.pem": tf_out["mysql_server_ca_pem"]}), secrets=secrets)
    schema_dir = _module_dir(cl, ph, "trillian", "github.com/google/trillian")
    schema = "" if ex.dry_run else (schema_dir / "storage/mysql/schema/storage.sql").read_text()
    cl.kubectl(ph, ["apply", "-f", "-"], what="ConfigMap trillian-schema from the pinned module's storage.sql",
               input=k8s_object("ConfigMap", "trillian-schema", {"storage.sql": schema}))
    setup = render("trillian-setup", values).split("\n---\n")
    cl.kubectl(ph, ["apply", "-f", "-"], what="job/trillian-schema: load the schema into the fresh database",
               input=setup[0])
    _wait_job(cl, ph, "trillian-schema", T_JOB_SETUP)
    cl.kubectl(ph, ["apply", "-f", "-"], what="Trillian log server and signer (tainted trillian pool)",
               input=render("trillian", values))
    _rollout(cl, ph, "trillian-log-server")
    _rollout(cl, ph, "trillian-signer")
    cl.kubectl(ph, ["apply", "-f", "-"], what="job/trillian-createtree", input=setup[1])
    _wait_job(cl, ph, "trillian-createtree", T_JOB_SETUP)
    text = cl.kubectl(ph, ["logs", "job/trillian-createtree"], what="read the new tree id (createtree prints only it)",
                      dry_stdout="1234567890").stdout.strip()
    if not re.fullmatch(r"\d+", text.splitlines()[-1] if text else ""):
        raise RunFailed(f"createtree printed {text[-80:]!r}, not a tree id")
    cl.tree_id = int(text.splitlines()[-1])
    pki_files = _pki_files(cl)
    config = ("<log_config.textproto>" if ex.dry_run else
              ctfe_log_config(cl.tree_id, tf_out["ctfe_private_key_pem"], tf_out["ctfe_public_key_pem"]))
    cl.kubectl(ph, ["apply", "-f", "-"], what="Secret ctfe-config (tree id, signing key inline, roots; hidden)",
               input=k8s_object("Secret", "ctfe-config", {"log_config.textproto": config,
                                                         "roots.pem": pki_files["roots"]}))
    cl.kubectl(ph, ["apply", "-f", "-"], what="CTFE ct_server (tainted trillian pool)", input=render("ctfe", values))
    _rollout(cl, ph, "ct-server")
    cl.kubectl(ph, ["apply", "-f", "-"], what="ConfigMap ct-roots (the harness PKI roots)",
               input=k8s_object("ConfigMap", "ct-roots", {"roots.pem": pki_files["roots"]}))
    cl.kubectl(ph, ["apply", "-f", "-"], what="TesseraCT gcp (tainted tesseract pool; numeric key versions)",
               input=render("tesseract", values))
    _rollout(cl, ph, "tesseract")
    cl.kubectl(ph, ["apply", "-f", "-"], what="ConfigMap log-keys (both logs' public keys, for SCT checks)",
               input=k8s_object("ConfigMap", "log-keys", {"trillian.pem": tf_out["ctfe_public_key_pem"],
                                                        "tesseract.pem": tf_out["tesseract_public_key_pem"],
                                                        "tesseract.b64": der_b64(tf_out["tesseract_public_key_pem"])}))
    cl.kubectl(ph, ["apply", "-f", "-"], what="Secret loadgen-pki (test intermediate CA; hidden)",
               input=k8s_object("Secret", "loadgen-pki", {"intermediate.pem": pki_files["intermediate"],
                                                         "intermediate.key.pem": pki_files["intermediate_key"]}))
    if o.loadgen == "native":
        cl.kubectl(ph, ["apply", "-f", "-"], what="Secret native-hammer-data (hammer test data, log config; hidden)",
                   input=k8s_object("Secret", "native-hammer-data", _native_data(cl, pki_files, config)))
    cl.save()


def _native_data(cl: Cluster, pki_files: dict[str, Any], config: str) -> dict[str, str]:
    layout = pki_files["pki"]
    if layout is None:
        return {"<hammer test data>": "<hidden>"}
    return {
        "log_config.textproto": config,
        "leaf01.chain": (layout.ct_hammer_dir / "leaf01.chain").read_text(),
        "int-ca.privkey.pem": (layout.ct_hammer_dir / "int-ca.privkey.pem").read_text(),
        "intermediate.pem": (layout.tesseract_hammer_dir / "intermediate.pem").read_text(),
        "intermediate.key.pem": (layout.tesseract_hammer_dir / "intermediate.key.pem").read_text(),
        "leaf_signing.key.pem": (layout.tesseract_hammer_dir / "leaf_signing.key.pem").read_text(),
    }


# ---------------------------------------------------------------------------- reading the logs


def _proxy_path(service: str, path: str) -> str:
    # The API server's service proxy: ClusterIP services stay private, kubectl authenticates.
    return f"/api/v1/namespaces/{NAMESPACE}/services/http:{service}:6962/proxy/{PREFIX}/{path}"


def read_tree(cl: Cluster, phase: str, system: str) -> dict[str, Any]:
    """The log's signed tree head, verified: {size, timestamp_ms, read_at}."""
    from scripts import ctverify
    if system == "trillian":
        text = cl.kubectl(phase, ["get", "--raw", _proxy_path("ct-server", "ct/v1/get-sth")],
                          what="Trillian get-sth through the API server proxy (verified STH)",
                          dry_stdout="{}").stdout
        if cl.ex.dry_run:
            return {"size": 0, "timestamp_ms": 0, "read_at": time.time()}
        key = ctverify.load_public_key(cl.outputs["ctfe_public_key_pem"].encode())
        head = ctverify.verify_sth(json.loads(text), key)
    else:
        from scripts import gcs
        bucket = cl.outputs["log_bucket"]
        note = cl.ex.api(phase, "GET", gcs.media_url(bucket, gcs.CHECKPOINT_OBJECT),
                         what="TesseraCT checkpoint from GCS (JSON API, verified signed note)",
                         call=lambda: gcs.read_object(cl.ex.session, bucket, gcs.CHECKPOINT_OBJECT),
                         dry_result=b"")
        if cl.ex.dry_run:
            return {"size": 0, "timestamp_ms": 0, "read_at": time.time()}
        key = ctverify.load_public_key(cl.outputs["tesseract_public_key_pem"].encode())
        head = ctverify.verify_checkpoint(note, TESSERACT_ORIGIN, key)
    return {"size": head.size, "timestamp_ms": head.timestamp_ms, "read_at": time.time()}


def smoke_tier(cl: Cluster) -> dict[str, dict[str, Any]]:
    """One fresh chain per log: a verified SCT, then the signed tree must grow (deadline)."""
    from scripts import ctverify
    out: dict[str, dict[str, Any]] = {}
    pki_layout = _pki_files(cl)["pki"]
    for system in cl.o.systems:
        ph = "smoke"
        service = "ct-server" if system == "trillian" else "tesseract"
        cl.kubectl(ph, ["get", "--raw", _proxy_path(service, "ct/v1/get-roots")], what=f"{system}: get-roots")
        before = read_tree(cl, ph, system)
        chain = [] if cl.ex.dry_run else _fresh_chain(pki_layout)
        body = json.dumps({"chain": [base64.b64encode(c).decode() for c in chain]})
        text = cl.kubectl(ph, ["create", "--raw", _proxy_path(service, "ct/v1/add-chain"), "-f", "-"],
                          what=f"{system}: add-chain with a fresh certificate", input=body, dry_stdout="{}").stdout
        if not cl.ex.dry_run:
            key_pem = cl.outputs["ctfe_public_key_pem" if system == "trillian" else "tesseract_public_key_pem"]
            ctverify.verify_sct(json.loads(text), chain, ctverify.load_public_key(key_pem.encode()))
        grown = _wait_growth(cl, ph, system, before["size"], deadline_s=180)
        out[system] = {"ok": True, "tree_size_before": before["size"], "tree_size_after": grown["size"]}
    return out


def _fresh_chain(layout) -> list[bytes]:
    from scripts import pki
    return pki.fresh_chains(layout, 1)[0]


def _wait_growth(cl: Cluster, phase: str, system: str, size: int, *, deadline_s: float) -> dict[str, Any]:
    if cl.ex.dry_run:
        return read_tree(cl, phase, system)
    end = time.monotonic() + deadline_s
    while True:
        head = read_tree(cl, phase, system)
        if head["size"] > size:
            return head
        if time.monotonic() > end:
            raise RunFailed(f"{system}: signed tree did not grow past {size} within {deadline_s:g}s")
        time.sleep(2)


# ---------------------------------------------------------------------------- the measured run


def bench_system(cl: Cluster, system: str, run_id: str) -> dict[str, Any]:
    """One window against one system. Returns the observation dict (local target's keys)."""
    from scripts import hammer as local_hammer
    ph = "bench"
    load = load_values(cl.costs, cl.o, system, cl.outputs, run_id)
    values = manifest_values(cl.costs, cl.o, cl.outputs, cl.images)
    obs: dict[str, Any] = {"offered_qps": cl.o.qps, "duration_s": cl.o.duration, "warmup_s": cl.o.warmup,
                           "generator": {"kind": cl.o.loadgen, "offered_qps": cl.o.qps, "job": load["job_name"],
                                         "image": cl.images.get("loadgen" if cl.o.loadgen == "uniform" else
                                                                ("ct_hammer" if system == "trillian" else
                                                                 "tesseract_hammer")),
                                         "parallelism": load["parallelism"], "rate_per_pod": load["rate_per_pod"],
                                         "pool": "loadgen", "flags": {k: load[k] for k in (
                                             "url", "duration_s", "warmup_s", "max_in_flight_per_pod",
                                             "operations", "max_parallel_chains", "num_writers")}}}
    start = read_tree(cl, ph, system)
    obs["start_tree_size"] = start["size"]
    cl.kubectl(ph, ["apply", "-f", "-"], what=f"{system}: Indexed Job {load['job_name']} x{load['parallelism']} "
               f"({load['rate_per_pod']}/s each) in the loadgen pool", input=render("loadgen-job", {**values, "load": load}))
    started = _wait_pods_running(cl, ph, load)
    cl.ex.pause_until(ph, started + cl.o.warmup + START_SLACK_S,
                      f"{system}: warmup {cl.o.warmup:g}s + {START_SLACK_S}s start slack (not measured)")
    s0 = read_tree(cl, ph, system)
    tree = _sample_window(cl, ph, system, s0, s0["read_at"] + cl.o.duration)
    s1 = tree[-1]
    window = s1["read_at"] - s0["read_at"]
    obs.update(tree_size_window_start=s0["size"], tree_size_window_end=s1["size"], window_s=round(window, 3),
               entries_integrated=s1["size"] - s0["size"],
               window={"start_unix": s0["read_at"], "end_unix": s1["read_at"]},
               tree=[(round(h["read_at"], 3), h["size"], h["timestamp_ms"]) for h in tree])
    try:
        _wait_job(cl, ph, load["job_name"], load["deadline_s"], completions=load["parallelism"])
        obs["generator_exit_codes"] = {}
    except RunFailed as exc:
        obs["generator_exited"] = True
        obs["generator_exit_codes"] = {load["job_name"]: one_line(exc)}
    if cl.o.loadgen == "uniform":
        _read_load_results(cl, ph, system, run_id, load, obs)
    obs["final_tree_size"] = read_tree(cl, ph, system)["size"]
    obs["backlog_at_window_end"] = None   # the load outlives the window (tail): SCTs accepted in it tell instead
    obs["resources"] = {"source": "Cloud Monitoring (filled by the metrics step)",
                        "labels": ["client-bound"] if obs.get("generator_client_bound") else []}
    status, reason = local_hammer.judge(obs, cl.o.duration) if not cl.ex.dry_run else ("ok", "")
    obs["status"], obs["reason"] = status, reason
    if status == "ok":
        obs["qps"] = round(obs["entries_integrated"] / window, 2)
        rates = local_hammer.per_interval_rates(obs["tree"], s0["read_at"], s1["read_at"], STABILITY_BUCKET_S)
        obs["stability"] = local_hammer.stability(rates)
        obs["sustainable"] = local_hammer.sustainable(obs)
        obs["limited_by"] = local_hammer.limited_by(obs)
    else:
        obs["qps"] = None
    return obs


def _sample_window(cl: Cluster, phase: str, system: str, first: dict[str, Any], end: float) -> list[dict[str, Any]]:
    """Read the signed tree every SAMPLE_EVERY_S until `end`: the window's growth and its stability."""
    cl.ex.timed(phase, f"{system}: measured window {cl.o.duration:g}s, the signed tree read every "
                                  f"{SAMPLE_EVERY_S:g}s")
    if cl.ex.dry_run:
        return [first, read_tree(cl, phase, system)]
    heads = [first]
    while heads[-1]["read_at"] < end:
        wake = min(end, heads[-1]["read_at"] + SAMPLE_EVERY_S)
        while (left := wake - time.time()) > 0:
            time.sleep(left)
        heads.append(read_tree(cl, phase, system))
    return heads


def _read_load_results(cl: Cluster, phase: str, system: str, run_id: str, load: dict[str, Any],
                       obs: dict[str, Any]) -> None:
    """Every load pod's result JSON from the results bucket: failures, SCTs accepted in the window,
    the generator's own client-bound verdict."""
    from scripts import gcs
    from scripts import hammer as local_hammer
    prefix = f"runs/{run_id}/{system}/"
    bucket = cl.outputs["results_bucket"]
    items = cl.ex.api(phase, "GET", gcs.list_url(bucket, prefix), what=f"{system}: list load generator results",
                      call=lambda: gcs.list_objects(cl.ex.session, bucket, prefix), dry_result=[])
    docs = [json.loads(cl.ex.api(phase, "GET", gcs.media_url(bucket, item["name"]), what=f"read {item['name']}",
                                 call=lambda n=item["name"]: gcs.read_object(cl.ex.session, bucket, n),
                                 dry_result=b"{}")) for item in items]
    obs["loadgen_result"] = [{k: v for k, v in d.items() if k not in ("per_second_ok", "per_second_sent")}
                             for d in docs]
    problems = {}
    if not cl.ex.dry_run and len(docs) != load["parallelism"]:
        problems["results"] = f"{len(docs)} of {load['parallelism']} result files"
    for d in docs:
        if d.get("status") == "failed":
            problems[d.get("label", "?")] = f"failed: {d.get('reason', 'no reason given')}"
    if problems:
        obs["generator_exited"] = True
        obs["generator_exit_codes"] = {**obs.get("generator_exit_codes", {}), **problems}
    accepted = [local_hammer.ok_in_window(d.get("per_second_ok"), d.get("start_unix"), obs["window"]["start_unix"],
                                          obs["window"]["end_unix"]) for d in docs]
    if docs and all(a is not None for a in accepted):
        obs["accepted_in_window"] = sum(accepted)
    bound = [r for d in docs if d.get("client_bound") for r in (d.get("client_bound_reasons") or [d.get("label")])]
    if bound:
        obs["generator_client_bound"] = bound


def _wait_pods_running(cl: Cluster, phase: str, load: dict[str, Any]) -> float:
    what = (f"wait until all {load['parallelism']} load pods run (deadline {START_GRACE_S}s); the window is "
            "timed from here")
    selector = f"job-name={load['job_name']}"
    if cl.ex.dry_run:
        cl.kubectl(phase, ["get", "pods", "-l", selector, "-o", "json"], what=what)
        return time.time()
    end = time.monotonic() + START_GRACE_S
    while True:
        doc = json.loads(cl.kubectl(phase, ["get", "pods", "-l", selector, "-o", "json"], what=what).stdout)
        phases = [p.get("status", {}).get("phase") for p in doc.get("items", [])]
        if "Failed" in phases:
            raise RunFailed(f"{load['job_name']}: a load pod failed before the window")
        if len(phases) >= load["parallelism"] and all(p in ("Running", "Succeeded") for p in phases):
            return time.time()
        if time.monotonic() > end:
            raise RunFailed(f"{load['job_name']}: load pods not running after {START_GRACE_S}s ({phases})")
        time.sleep(3)


# ---------------------------------------------------------------------------- metrics


def metrics_for(cl: Cluster, doc: dict[str, Any]) -> dict[str, Any]:
    """CPU/memory per workload, Cloud SQL and Spanner CPU, load generator CPU, for each window."""
    from scripts import monitoring as mon
    out: dict[str, Any] = {}
    for system, res in doc.get("systems", {}).items():
        window = res.get("window") or {}
        if not window:
            continue
        start, end = window["start_unix"], window["end_unix"]
        if not cl.ex.dry_run:
            cl.ex.pause_until("metrics", end + MONITORING_LAG_S, "wait for Cloud Monitoring to ingest the window")
        queries = mon.queries_for(system, project=cl.o.project, cluster=cl.outputs["cluster_name"],
                                  namespace=NAMESPACE, cloudsql_instance=cl.outputs["cloudsql_instance"],
                                  spanner_instance=cl.outputs["spanner_instance"],
                                  loadgen_job=res.get("generator", {}).get("job", ""))
        series = {}
        for name, q in queries.items():
            url = mon.time_series_url(cl.o.project, q["filter"], start, end)
            series[name] = cl.ex.api("metrics", "GET", url, what=f"{system}: {q['what']}",
                                     call=lambda u=url: mon.list_time_series(cl.ex.session, u), dry_result=[])
        out[system] = mon.summarize(series, start, end)
    return out


# ============================================================================ entry points


def _executor(o: Opts, log=print) -> Executor:
    ex = Executor(dry_run=o.dry_run, log=log)
    if not o.dry_run:
        from scripts import gcs
        ex.session = gcs.authorized_session()
    return ex


def _clusters(o: Opts, costs: dict, ex: Executor):
    for tier in o.tiers:
        yield Cluster(o.for_tier(tier), costs, ex)


def _require_tool(name: str, hint: str) -> str:
    path = shutil.which(name) or (str(paths.BIN_DIR / name) if (paths.BIN_DIR / name).exists() else None)
    if not path:
        raise BadInput(f"{name} not found: {hint}")
    return path


# Tool checks: (name, version command, how to read the version, minimum, how to get it).
TOOL_CHECKS = (
    ("go", ["go", "env", "GOVERSION"], "go", None,
     "install Go (https://go.dev/dl/): tools/ko/go.mod says which version builds ko"),
    ("terraform", ["terraform", "version", "-json"], "terraform", MIN_TERRAFORM,
     "install Terraform >= 1.9 (https://developer.hashicorp.com/terraform/install)"),
    ("gcloud", ["gcloud", "version", "--format=json"], "gcloud", MIN_GCLOUD,
     "install or update the Google Cloud CLI (https://cloud.google.com/sdk/docs/install)"),
    ("gke-gcloud-auth-plugin", ["gke-gcloud-auth-plugin", "--version"], None, None,
     "run `gcloud components install gke-gcloud-auth-plugin` (Debian/Ubuntu: apt-get install "
     "google-cloud-cli-gke-gcloud-auth-plugin)"),
    ("kubectl", ["kubectl", "version", "--client", "-o", "json"], None, None,
     "run `gcloud components install kubectl` (or apt-get install kubectl)"),
    ("docker", ["docker", "version", "--format", "{{.Client.Version}}"], None, None,
     "install Docker to build the load generator image (or use --loadgen native)"),
)


def tool_version(kind: str | None, text: str) -> tuple[int, ...] | None:
    """The version a tool reports (pure): go1.26.8 / terraform -json / gcloud --format=json."""
    if kind is None:
        return None
    try:
        if kind == "go":
            raw = text.strip().removeprefix("go")
        elif kind == "terraform":
            raw = json.loads(text)["terraform_version"]
        else:
            raw = json.loads(text)["Google Cloud SDK"]
    except (ValueError, KeyError, TypeError):
        raise BadInput(f"{kind}: cannot read its version from {text.strip()[:60]!r}") from None
    numbers = re.findall(r"\d+", raw)
    if not numbers:
        raise BadInput(f"{kind}: cannot read its version from {raw!r}")
    return tuple(int(x) for x in numbers[:3])


def required_go_for_ko() -> tuple[int, ...]:
    match = re.search(r"^go\s+(\S+)", (paths.TOOLS_DIR / "ko" / "go.mod").read_text(), re.M)
    return tuple(int(x) for x in re.findall(r"\d+", match.group(1))[:3]) if match else (1, 0)


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def bootstrap(opts: dict[str, Any], *, log=print) -> list[dict[str, Any]]:
    """Check Go, terraform, gcloud, the GKE auth plugin, kubectl and docker (each: found, new enough),
    then build the pinned ko and crane from tools/ko into bin/."""
    o, _costs = _prepare(opts)
    ex = Executor(dry_run=o.dry_run, log=log)
    found = []
    for name, cmd, kind, minimum, hint in TOOL_CHECKS:
        if name == "docker" and o.loadgen != "uniform":
            continue
        if name == "go":
            minimum = required_go_for_ko()
        if not o.dry_run and not shutil.which(name):
            raise BadInput(f"{name} not found: {hint}")
        try:
            out = ex.run("bootstrap", cmd, what=f"check {name}" + (f" >= {_dotted(minimum)}" if minimum else ""),
                         timeout=60)
        except RunFailed as exc:
            raise BadInput(f"{name} does not run ({one_line(exc)}): {hint}") from None
        have = None if o.dry_run else tool_version(kind, out.stdout)
        if have is not None and minimum is not None and have < minimum:
            raise BadInput(f"{name} {_dotted(have)} is too old: {_dotted(minimum)} or newer is needed; {hint}")
        found.append(name if have is None else f"{name} {_dotted(have)}")
    ex.run("bootstrap", ["go", "-C", "tools/ko", "build", "-o", f"{paths.BIN_DIR}/", "tool"],
           what="build the pinned ko and crane (tools/ko/go.mod)", timeout=T_KO, cwd=paths.REPO,
           env={"GOFLAGS": "-mod=readonly"})
    if o.dry_run:
        print_plan(ex.steps, log=log)
    else:
        log(f"bootstrap: {', '.join(found)}; ko and crane built into {paths.BIN_DIR}")
    return ex.steps


def deploy(opts: dict[str, Any], *, log=print) -> list[dict[str, Any]]:
    """terraform apply for the tier, ko images, schema and tree, every rollout waited with a deadline."""
    o, costs = _prepare(opts)
    ex = _executor(o, log)       # each tier's cost estimate is the first step of deploy_tier
    for cl in _clusters(o, costs, ex):
        deploy_tier(cl)
    if o.dry_run:
        print_plan(ex.steps, log=log)
    return ex.steps


def _attached(o: Opts, costs: dict, ex: Executor, phase: str) -> Cluster:
    """A cluster deployed earlier: saved state, else terraform outputs; kubeconfig refreshed."""
    cl = Cluster(o, costs, ex)
    if not cl.load_saved():
        terraform_init(cl, phase)
        cl.outputs = terraform_outputs(cl, phase)
    if not cl.kubeconfig.exists() or ex.dry_run:
        ex.run(phase, ["gcloud", "container", "clusters", "get-credentials", cl.outputs["cluster_name"],
                       f"--location={cl.outputs['cluster_location']}", f"--project={o.project}"],
               what="kubeconfig for this cluster", timeout=T_GCLOUD, env=cl.kenv())
    if not cl.outputs.get("ctfe_public_key_pem") or SENSITIVE_OUTPUTS - set(cl.outputs):
        if not ex.dry_run:
            terraform_init(cl, phase)
            cl.outputs.update(terraform_outputs(cl, phase))
    if ex.dry_run:
        cl.images = cl.images or placeholder_images(cl.outputs["image_repository"])
    elif not cl.images:
        raise BadInput(f"the images of tier {o.tier} are unknown ({cl.state_file} is missing): run "
                       f"`inv deploy --target gke --tier {o.tier}` from this checkout first")
    return cl


def smoke(opts: dict[str, Any], *, log=print) -> dict[str, Any]:
    o, costs = _prepare(opts)
    ex = _executor(o, log)
    out = {}
    for tier in o.tiers:
        cl = _attached(o.for_tier(tier), costs, ex, "smoke")
        out[tier] = smoke_tier(cl)
    if o.dry_run:
        print_plan(ex.steps, log=log)
    return out


def _run_doc(cl: Cluster) -> dict[str, Any]:
    """A results document in the local target's schema (tasks' report renders it the same way)."""
    from scripts import config, results
    from scripts import deploy as local
    settings = config.settings({**config.DEFAULTS, "target": "gke", "tier": cl.o.tier,
                                "systems": ",".join(cl.o.systems), "qps": cl.o.qps, "duration": cl.o.duration,
                                "warmup": cl.o.warmup, "project": cl.o.project, "region": cl.o.region,
                                "loadgen": "uniform" if cl.o.loadgen == "uniform" else "native"})
    values = manifest_values(cl.costs, cl.o, cl.outputs, cl.images) if cl.images else {}
    components = {
        "trillian_log_server": {"system": "trillian", "flags": {"quota_system": "mysql", "mysql_tls": "verify CA + server name"}},
        "trillian_log_signer": {"system": "trillian", "flags": {"force_master": "true", **local.SIGNER_FLAGS}},
        "ct_server": {"system": "trillian", "flags": {"log_rpc_server": "trillian-log-server:8090"}},
        "tesseract": {"system": "tesseract", "flags": dict(values.get("tesseract", {}).get("flags", {}))},
    }
    st = {"versions": local.upstream_versions(), "components": components,
          "systems": {s: {"knobs": {}} for s in cl.o.systems}}
    doc = results.new_run(settings, st)
    doc["gke"] = {"project": cl.o.project, "region": cl.o.region, "zone": cl.o.zone,
                  "node_pools": cl.costs["tiers"][cl.o.tier]["gke"]["node_pools"],
                  "cloudsql": cl.costs["tiers"][cl.o.tier]["cloudsql"],
                  "spanner": cl.costs["tiers"][cl.o.tier]["spanner"], "images": cl.images,
                  "resources": workload_resources(cl.costs, cl.o.tier), "tree_id": cl.tree_id,
                  # what the metrics step needs after teardown (no secrets)
                  "names": {k: cl.outputs[k] for k in ("cluster_name", "cluster_location", "cloudsql_instance",
                                                       "spanner_instance", "log_bucket", "results_bucket")}}
    return doc


def bench(opts: dict[str, Any], *, log=print) -> dict[str, Any]:
    """Load each system in turn with an Indexed Job; integrated QPS from the signed tree. Per tier."""
    from scripts import results
    o, costs = _prepare(opts)
    ex = _executor(o, log)
    out: dict[str, Any] = {}
    for tier in o.tiers:
        cl = _attached(o.for_tier(tier), costs, ex, "bench")
        out[tier] = _bench_tier(cl, results)
    if o.dry_run:
        print_plan(ex.steps, log=log)
    return out


def _bench_tier(cl: Cluster, results) -> dict[str, Any]:
    if cl.ex.dry_run:
        run_id = "dry-run"
        doc = {"run_id": run_id, "systems": {}}
    else:
        doc = _run_doc(cl)
        run_id = doc["run_id"]
        results.save(doc)
    for system in cl.o.systems:
        try:
            obs = bench_system(cl, system, run_id)
        except HarnessError as exc:
            obs = {"status": "failed", "reason": one_line(exc), "qps": None}
        entry = results.system_entry(obs)
        entry["window"] = obs.get("window")
        doc["systems"][system] = entry
        if not cl.ex.dry_run:
            results.save(doc)
    if not cl.ex.dry_run:
        results.finish(doc)
        results.save(doc)
    return doc


def _dry_run_doc(o: Opts) -> dict[str, Any]:
    """The shape of a bench result, for plans: one window per system."""
    return {"tier": o.tier, "target": "gke",
            "gke": {"names": placeholder_outputs(o.project, o.tier, o.region)},
            "systems": {s: {"window": {"start_unix": 0, "end_unix": 1}, "generator": {"job": f"load-{s}-dry-run"}}
                        for s in o.systems}}


def metrics(opts: dict[str, Any], *, log=print, doc: dict[str, Any] | None = None) -> dict[str, Any]:
    """Cloud Monitoring for a run's windows (default: the latest results): CPU per workload, Cloud SQL,
    Spanner, load generators. Works after teardown: the series outlive the cluster, and the names it
    needs are in the results document."""
    from scripts import monitoring as mon
    from scripts import results
    o, costs = _prepare(opts)
    ex = _executor(o, log)
    if doc is None:
        doc = _dry_run_doc(o) if ex.dry_run else results.load(None)
    if doc.get("target") != "gke" or not doc.get("gke", {}).get("names"):
        raise BadInput(f"results {doc.get('run_id', '?')} are not from a gke run: nothing to read from Cloud Monitoring")
    cl = Cluster(o.for_tier(doc["tier"]), costs, ex)
    cl.outputs = dict(doc["gke"]["names"])
    found = metrics_for(cl, doc)
    if not ex.dry_run:
        for system, usage in found.items():
            res = doc["systems"][system]
            res["resources"] = mon.resources_entry(usage, res.get("window_s") or 0.0,
                                                   workload_resources(costs, doc["tier"])["loadgen"])
            if res.get("status") == "ok" and "client-bound" in res["resources"]["labels"]:
                res["limited_by"] = "load generator (client-bound)"
        results.save(results.apply_metrics(doc))
    else:
        print_plan(ex.steps, log=log)
    return found


def down_tier(cl: Cluster) -> None:
    ph = "down"
    terraform_init(cl, ph)
    try:
        cl.ex.run(ph, _tf("destroy", "-input=false", "-auto-approve", "-lock-timeout=300s", *tf_vars(cl.o)),
                  what=f"terraform destroy: everything of tier {cl.o.tier} (buckets with their objects)",
                  timeout=T_TERRAFORM, env=_tf_env())
    except RunFailed as exc:
        left = cl.ex.run(ph, _tf("state", "list"), what="list what is still running", timeout=300,
                         env=_tf_env(), check=False).stdout.split()
        raise RunFailed(f"terraform destroy failed for tier {cl.o.tier} ({one_line(exc)}); still in state: "
                        f"{', '.join(left) or 'nothing'}; results are kept; rerun `inv down --target gke --tier "
                        f"{cl.o.tier}`") from None
    if not cl.ex.dry_run:
        for path in (cl.kubeconfig, cl.state_file):
            path.unlink(missing_ok=True)


def down(opts: dict[str, Any], *, log=print) -> list[dict[str, Any]]:
    """terraform destroy per tier (idempotent; runnable alone from the saved state in the GCS backend)."""
    o, costs = _prepare(opts)
    ex = _executor(o, log)
    errors = []
    for cl in _clusters(o, costs, ex):
        try:
            down_tier(cl)
        except RunFailed as exc:
            errors.append(one_line(exc))
    if o.dry_run:
        print_plan(ex.steps, log=log)
    if errors:
        raise RunFailed("; ".join(errors))
    return ex.steps


def ci(opts: dict[str, Any], *, log=print) -> dict[str, Any]:
    """Per tier, in sequence: deploy -> smoke -> bench, destroy ALWAYS (finally), then metrics and report."""
    from scripts import results
    o, costs = _prepare(opts)
    ex = _executor(o, log)
    docs: dict[str, Any] = {}
    failures: list[str] = []
    for tier in o.tiers:
        cl = Cluster(o.for_tier(tier), costs, ex)   # deploy_tier shows this tier's cost estimate first
        doc = None
        try:
            deploy_tier(cl)
            smoke_tier(cl)
            doc = _bench_tier(cl, results)
        except HarnessError as exc:
            failures.append(f"{tier}: {one_line(exc)}")
        finally:
            try:
                down_tier(cl)   # teardown before anything is published
            except RunFailed as exc:
                failures.append(one_line(exc))
        if doc is not None:
            if ex.dry_run:
                metrics_for(cl, _dry_run_doc(cl.o))
            else:
                try:
                    metrics(opts | {"tiers": [tier], "tier": tier}, log=log, doc=doc)
                except HarnessError as exc:   # the run's numbers stand; say that usage is missing
                    failures.append(f"{tier}: metrics: {one_line(exc)}")
            if not ex.dry_run:
                from scripts import update_readme
                update_readme.report(doc)
            else:
                ex.note("report", "render README results table and the PR body from the results JSON")
            docs[tier] = doc
    if o.dry_run:
        print_plan(ex.steps, log=log)
    if failures:
        raise RunFailed("; ".join(failures))
    return docs


def plan(opts: dict[str, Any]) -> list[dict[str, Any]]:
    """The exact ordered steps of `ci` for opts (pure: nothing runs, no credentials needed)."""
    o, costs = _prepare({**opts, "dry_run": True})
    ex = Executor(dry_run=True, log=lambda _text: None)
    steps: list[dict[str, Any]] = []
    for tier in o.tiers:
        cl = Cluster(o.for_tier(tier), costs, ex)
        deploy_tier(cl)
        smoke_tier(cl)
        _bench_tier(cl, _DryResults)
        down_tier(cl)
        for step in ex.steps[len(steps):]:
            step["tier"] = tier
            if step["phase"] == "down":
                step["always"] = True
        metrics_for(cl, _dry_run_doc(cl.o))
        ex.note("report", "render README results table and the PR body from the results JSON")
        for step in ex.steps[len(steps):]:
            step.setdefault("tier", tier)
        steps = list(ex.steps)
    return steps


class _DryResults:
    """Stands in for scripts.results in a plan: shapes entries without touching files."""

    @staticmethod
    def system_entry(obs: dict[str, Any]) -> dict[str, Any]:
        return dict(obs)


def print_plan(steps: list[dict[str, Any]], *, log=print) -> None:
    for step in steps:
        where = f"[{step.get('tier', '')}{'/' if step.get('tier') else ''}{step['phase']}]"
        if step["tool"] == "api":
            action = f"{step['method']} {step['url']}"
        elif step["tool"] in ("note", "clock"):
            action = ""
        else:
            env = " ".join(f"{k}={v}" for k, v in (step.get("env") or {}).items())
            cwd = f"(cd {step['cwd']}) " if step.get("cwd") else ""
            action = cwd + (env + " " if env else "") + " ".join(_quote(c) for c in step["cmd"])
        always = " (always)" if step.get("always") else ""
        log(f"{step['n']:3d}. {where}{always} {step['what']}" + (f"\n       $ {action}" if action else ""))


def _quote(text: str) -> str:
    import shlex
    return shlex.quote(str(text))


# ============================================================================ CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.gke", description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=(*STEPS, "plan", "tfvars"), help="what to do")
    parser.add_argument("--dry-run", action="store_true", help="print the exact steps; run nothing")
    parser.add_argument("--tier", default="small", help="tier from costs.json")
    parser.add_argument("--tiers", default=None, help="comma-separated tiers, run one after another")
    parser.add_argument("--project", default=None, help="Google Cloud project (default: $GOOGLE_CLOUD_PROJECT)")
    parser.add_argument("--region", default=None, help="region (default: costs.json region)")
    parser.add_argument("--systems", default="trillian,tesseract", help="comma-separated systems")
    parser.add_argument("--qps", type=float, default=200, help="offered write rate per system")
    parser.add_argument("--duration", type=float, default=DEFAULT_WINDOW_S, help="measured window, seconds")
    parser.add_argument("--warmup", type=float, default=DEFAULT_WARMUP_S, help="unmeasured warmup, seconds")
    parser.add_argument("--loadgen", default="uniform", choices=LOADGENS, help="load generator")
    parser.add_argument("--run-dir", type=Path, default=paths.RESULTS_DIR, help="where results go")
    args = parser.parse_args(argv)
    if args.step == "tfvars":
        costs = costs_mod.load_costs()
        for tier in costs_mod.tier_names(costs):
            (TF_DIR / "tiers" / f"{tier}.tfvars").write_text(tfvars_text(costs, tier))
            print(f"wrote terraform/tiers/{tier}.tfvars")
        return 0
    opts = {"tier": args.tier, "tiers": (args.tiers.split(",") if args.tiers else [args.tier]),
            "systems": args.systems.split(","), "qps": args.qps, "duration": args.duration, "warmup": args.warmup,
            "dry_run": args.dry_run, "project": args.project, "region": args.region, "run_dir": args.run_dir,
            "loadgen": args.loadgen, "duration_explicit": True}
    if args.step == "plan":
        print_plan(plan(opts))
        return 0
    result = globals()[args.step](opts)
    if args.step in ("bench", "metrics", "smoke", "ci") and not args.dry_run:
        print(json.dumps(result, indent=2, default=str))
    return 0


def _main_quietly_piped(argv: list[str] | None = None) -> int:
    try:
        return main(argv)
    except BrokenPipeError:      # `python -m scripts.gke plan … | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        return 0


run = cli_entry(_main_quietly_piped)

if __name__ == "__main__":
    run()
