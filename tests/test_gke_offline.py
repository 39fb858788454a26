"""Offline validation of the cloud path with the real tools: terraform fmt, checkov (Terraform, the
rendered manifests of every tier, the Dockerfile, the workflows), kubernetes-validate, actionlint,
and the dry-run plan of every tier. Nothing here talks to a cloud.

Tools (installed by setup.sh; exact commands in tools/validate/requirements.txt and tools/*/go.mod):
  .venv-validate/bin/checkov, .venv-validate/bin/kubernetes-validate  (separate venv: checkov pins much)
  bin/actionlint                                                      (go -C tools/actionlint build -o bin/ tool)
  terraform                                                           (>= 1.9 on PATH)
A missing validator skips its test with the reason on a developer machine and FAILS under CI=true
(bin/actionlint is built on the spot when Go is there); a missing terraform only ever skips.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from scripts import costs as costs_mod
from scripts import gke
from scripts import gke_spec as spec

REPO = Path(__file__).resolve().parent.parent
VALIDATE = REPO / ".venv-validate" / "bin"
CHECKOV = VALIDATE / "checkov"
KUBE_VALIDATE = VALIDATE / "kubernetes-validate"
VALIDATE_PY = VALIDATE / "python"
ACTIONLINT = REPO / "bin" / "actionlint"
WORKFLOWS = REPO / ".github" / "workflows"
TIERS = ("small", "medium", "large")
MIN_WAIVER_REASON = 30   # characters: a waiver says why, not just "skip"


def need(path: Path | str | None, install: str) -> str:
    found = str(path) if path and Path(path).exists() else None
    if found:
        return found
    message = f"{path} not found; install it with: {install}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def run(cmd: list[str], timeout: float = 180, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
           "LOG_LEVEL": "ERROR"}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def price_book():
    return costs_mod.load_costs()


@pytest.fixture(scope="module")
def manifests_dir(tmp_path_factory, price_book) -> Path:
    """Every manifest of every tier, rendered with placeholder outputs (and load Jobs of both kinds)."""
    out = tmp_path_factory.mktemp("manifests")
    for tier in TIERS:
        for name, text in spec.offline_manifests(price_book, tier).items():
            (out / f"{tier}-{name}.yaml").write_text(text)
    return out


@pytest.fixture(scope="module")
def manifests(manifests_dir) -> dict[str, list[dict]]:
    """file name -> parsed documents (PyYAML from the validators' venv: the main venv does not carry it)."""
    py = need(VALIDATE_PY, "bash setup.sh (creates .venv-validate)")
    code = ("import json, sys, yaml\n"
            "print(json.dumps({p.rsplit('/', 1)[-1]: [d for d in yaml.safe_load_all(open(p)) if d]"
            " for p in sys.argv[1:]}))")
    files = sorted(str(p) for p in manifests_dir.glob("*.yaml"))
    proc = run([py, "-c", code, *files])
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def checkov(target: list[str], framework: str) -> dict:
    exe = need(CHECKOV, "python3 -m venv .venv-validate && .venv-validate/bin/pip install -r tools/validate/requirements.txt")
    proc = run([exe, *target, "--framework", framework, "-o", "json", "--compact", "--skip-download"], timeout=240)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    docs = json.loads(proc.stdout)
    docs = docs if isinstance(docs, list) else [docs]
    assert docs and all(d.get("check_type") == framework for d in docs), proc.stdout[:500]
    return docs[0]


def assert_clean(report: dict, what: str) -> None:
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']})" for c in report["results"]["failed_checks"]]
    assert not failed, f"checkov failures in {what}:\n" + "\n".join(failed)
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 0
    for c in report["results"]["skipped_checks"]:
        reason = (c.get("check_result") or {}).get("suppress_comment", "").strip()
        assert len(reason) >= MIN_WAIVER_REASON, f"waiver without a reason: {c['check_id']} {c['resource']}"


# ------------------------------------------------------------------------------- Terraform


def test_terraform_fmt():
    exe = shutil.which("terraform")
    if exe is None:   # not guaranteed on every machine: skipped (never failed) with the reason
        pytest.skip("terraform not on PATH: install Terraform >= 1.9 (https://developer.hashicorp.com/terraform/install)")
    proc = run([exe, "fmt", "-check", "-recursive", "-diff", "terraform"], timeout=60)
    assert proc.returncode == 0, f"terraform fmt would change:\n{proc.stdout}"


def test_checkov_terraform_has_no_unexplained_failures():
    assert_clean(checkov(["-d", "terraform"], "terraform"), "terraform/")


def test_terraform_pins_and_backend():
    text = (REPO / "terraform" / "versions.tf").read_text()
    for provider, version in (("google", "6.50.0"), ("random", "3.7.2"), ("tls", "4.0.6")):
        assert re.search(rf'{provider} = \{{\s*source\s*= "hashicorp/{provider}"\s*version\s*= "= {re.escape(version)}"',
                         text), provider
    assert 'backend "gcs" {}' in text
    lock = REPO / "terraform" / ".terraform.lock.hcl"
    if lock.exists():   # written where the registry is reachable (terraform providers lock), then committed
        assert 'version     = "6.50.0"' in lock.read_text()


def test_least_privilege_and_wif_condition():
    tf = "\n".join(p.read_text() for p in (REPO / "terraform").rglob("*.tf"))
    for forbidden in ('"roles/owner"', '"roles/editor"', '"roles/storage.admin"',
                      '"roles/resourcemanager.projectIamAdmin"', '"roles/iam.serviceAccountAdmin"'):
        assert forbidden not in tf, forbidden
    boot = (REPO / "terraform" / "bootstrap" / "main.tf").read_text()
    cond = re.search(r"attribute_condition = \"(.*)\"", boot).group(1)
    assert "assertion.sub == 'repo:${var.github_repository}:ref:${var.github_ref}'" in cond
    assert "assertion.repository == '${var.github_repository}'" in cond
    assert "assertion.ref == '${var.github_ref}'" in cond
    assert 'issuer_uri = "https://token.actions.githubusercontent.com"' in boot
    sql = (REPO / "terraform" / "cloudsql.tf").read_text()
    assert "ipv4_enabled                                  = false" in sql and '"ENCRYPTED_ONLY"' in sql
    storage = (REPO / "terraform" / "storage.tf").read_text()
    assert storage.count("uniform_bucket_level_access = true") == 2 and storage.count("force_destroy               = true") == 2


def _tf_text(directory: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(directory.glob("*.tf")))


@pytest.mark.parametrize("directory", ["terraform", "terraform/bootstrap"])
def test_terraform_references_are_declared(directory):
    """What `terraform validate` would catch first, checked without the provider: every var.X and
    local.X used is declared (the google provider cannot be downloaded here)."""
    text = _tf_text(REPO / directory)
    declared_vars = set(re.findall(r'^variable "(\w+)"', text, re.M))
    declared_locals = set()
    for block in re.findall(r"^locals \{(.*?)^\}", text, re.M | re.S):
        declared_locals |= set(re.findall(r"^  (\w+)\s*=", block, re.M))
    used_vars = set(re.findall(r"\bvar\.(\w+)", text))
    used_locals = set(re.findall(r"\blocal\.(\w+)", text))
    assert used_vars <= declared_vars, used_vars - declared_vars
    assert used_locals <= declared_locals, used_locals - declared_locals
    resources = set(re.findall(r'^resource "(\w+)" "(\w+)"', text, re.M))
    for kind, name in set(re.findall(r"\b(google_\w+|random_\w+|tls_\w+)\.(\w+)\b", text)):
        assert (kind, name) in resources, f"{kind}.{name} is used but not declared in {directory}"


def test_tfvars_set_only_declared_variables():
    declared = set(re.findall(r'^variable "(\w+)"', _tf_text(REPO / "terraform"), re.M))
    for tfvars in (REPO / "terraform" / "tiers").glob("*.tfvars"):
        assigned = set(re.findall(r"^(\w+)\s*=", tfvars.read_text(), re.M))
        assert assigned <= declared, (tfvars.name, assigned - declared)


def test_outputs_the_harness_reads_are_declared():
    declared = set(re.findall(r'^output "(\w+)"', (REPO / "terraform" / "outputs.tf").read_text(), re.M))
    assert set(spec.placeholder_outputs("p", "small")) == declared
    source = (REPO / "scripts" / "gke.py").read_text() + (REPO / "scripts" / "gke_spec.py").read_text()
    used = set(re.findall(r'(?:outputs|tf_out)\["(\w+)"\]', source))
    assert used <= declared, used - declared
    assert spec.SENSITIVE_OUTPUTS <= declared
    outputs_tf = (REPO / "terraform" / "outputs.tf").read_text()
    for name in spec.SENSITIVE_OUTPUTS:
        block = outputs_tf.split(f'output "{name}"', 1)[1].split("}", 1)[0]
        assert "sensitive = true" in block, name


def test_loadgen_build_context_is_limited():
    ignore = (REPO / "k8s" / "loadgen.Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*") if "*" in ignore else 0] == "*"
    copied = re.findall(r"^COPY (\S+)", (REPO / "k8s" / "loadgen.Dockerfile").read_text(), re.M)
    for src in copied:
        assert f"!{src}" in ignore, src


# ------------------------------------------------------------------------------- manifests


def test_every_manifest_of_every_tier_validates_against_the_kubernetes_schema(manifests_dir):
    exe = need(KUBE_VALIDATE, "python3 -m venv .venv-validate && .venv-validate/bin/pip install -r tools/validate/requirements.txt")
    files = sorted(str(p) for p in manifests_dir.glob("*.yaml"))
    assert len(files) == len(TIERS) * (len(spec.MANIFESTS) + 4)
    proc = run([exe, "--strict", "--quiet", *files], timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_kubernetes_validate_rejects_a_broken_manifest(tmp_path):
    exe = need(KUBE_VALIDATE, "bash setup.sh")
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: \"2\"\n"
                   "  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n"
                   "    spec: {containers: [{name: c, image: i}]}\n")
    assert run([exe, "--strict", "--quiet", str(bad)]).returncode != 0


def test_checkov_manifests_have_no_unexplained_failures(manifests_dir):
    assert_clean(checkov(["-d", str(manifests_dir)], "kubernetes"), "rendered manifests")


def test_checkov_dockerfile_and_workflows():
    assert_clean(checkov(["-f", "k8s/loadgen.Dockerfile"], "dockerfile"), "k8s/loadgen.Dockerfile")
    assert_clean(checkov(["-d", ".github/workflows"], "github_actions"), ".github/workflows")


def _docs(manifests, kind: str):
    for name, docs in manifests.items():
        for doc in docs:
            if doc["kind"] == kind:
                yield name, doc


def test_services_are_cluster_ip_only(manifests):
    services = list(_docs(manifests, "Service"))
    assert services
    for name, svc in services:
        assert svc["spec"]["type"] == "ClusterIP", name
    for name, docs in manifests.items():
        assert all(d["kind"] != "Ingress" for d in docs), name


def _pod(doc):
    return doc["spec"]["template"]["spec"]


def test_workloads_sit_in_their_pools_with_limits_and_probes(manifests):
    pools = {"trillian-log-server": "trillian", "trillian-signer": "trillian", "ct-server": "trillian",
             "tesseract": "tesseract"}
    seen = set()
    for name, dep in _docs(manifests, "Deployment"):
        pod = _pod(dep)
        pool = pools[dep["metadata"]["name"]]
        seen.add(dep["metadata"]["name"])
        assert pod["nodeSelector"] == {"ctbench-pool": pool}, name
        assert {"key": "ctbench-pool", "operator": "Equal", "value": pool, "effect": "NoSchedule"} in pod["tolerations"]
        assert pod["automountServiceAccountToken"] is False
        for c in pod["containers"]:
            assert c["readinessProbe"]["httpGet"]["path"], name
            assert set(c["resources"]["requests"]) == {"cpu", "memory"} == set(c["resources"]["limits"])
            assert c["resources"]["limits"]["memory"] == c["resources"]["requests"]["memory"]
            assert "@sha256:" in c["image"], c["image"]
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert seen == set(pools)
    for name, job in _docs(manifests, "Job"):
        pod = _pod(job)
        assert pod["nodeSelector"] == {"ctbench-pool": "loadgen"}, name
        assert "tolerations" not in pod        # the loadgen pool is the untainted one
        assert all("@sha256:" in c["image"] for c in pod["containers"]), name


def test_load_jobs_are_indexed_and_never_retried(manifests):
    jobs = [(n, j) for n, j in _docs(manifests, "Job") if j["metadata"]["name"].startswith("load-")]
    assert len(jobs) == len(TIERS) * 4
    for name, job in jobs:
        assert job["spec"]["completionMode"] == "Indexed"
        assert job["spec"]["backoffLimit"] == 0
        assert job["spec"]["completions"] == job["spec"]["parallelism"] >= 1
    uniform = [j for n, j in jobs if n.endswith("uniform.yaml")]
    for job in uniform:
        script = _pod(job)["containers"][0]["args"][0]
        assert script.startswith("python -m scripts.loadgen --url http://")
        for flag in ("--log-public-key", "--rate", "--duration", "--warmup", "--out /results/result.json"):
            assert flag in script
        assert "python -m scripts.gcs put /results/result.json gs://" in script


def test_tesseract_flags_use_numeric_key_versions_and_the_prefix(manifests):
    for name, dep in _docs(manifests, "Deployment"):
        if dep["metadata"]["name"] != "tesseract":
            continue
        args = _pod(dep)["containers"][0]["args"]
        flags = dict(a[2:].split("=", 1) for a in args if "=" in a)
        for key in ("signer_private_key_secret_name", "signer_public_key_secret_name"):
            assert re.fullmatch(r"projects/[^/]+/secrets/[^/]+/versions/\d+", flags[key]), flags[key]
        assert flags["path_prefix"] == "/bench" and flags["origin"].endswith("/bench")
        assert flags["spanner_db_path"].startswith("projects/") and flags["bucket"]


def test_trillian_reaches_cloud_sql_over_verified_tls(manifests):
    for name, dep in _docs(manifests, "Deployment"):
        if not dep["metadata"]["name"].startswith("trillian-"):
            continue
        args = _pod(dep)["containers"][0]["args"]
        assert "--config=/etc/mysql-tls/trillian.flags" in args and "--mysql_tls_ca=/etc/mysql-tls/ca.pem" in args
        assert not any("mysql_uri" in a for a in args)
        assert "env" not in _pod(dep)["containers"][0]          # no secret in the environment either
        assert any(a.startswith("--mysql_server_name=") and len(a) > 22 for a in args)


# ------------------------------------------------------------------------------- workflows


@pytest.fixture(scope="module")
def actionlint() -> str:
    """bin/actionlint, built from the pinned tools/actionlint module when it is missing (~10 s)."""
    if not ACTIONLINT.exists() and shutil.which("go"):
        proc = subprocess.run(["go", "-C", "tools/actionlint", "build", "-o", f"{ACTIONLINT.parent}/", "tool"],
                              cwd=REPO, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "GOFLAGS": "-mod=readonly"})
        assert proc.returncode == 0, proc.stderr[-2000:]
    return need(ACTIONLINT, "go -C tools/actionlint build -o bin/ tool")


def test_actionlint(actionlint):
    exe = actionlint
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert {Path(f).name for f in files} >= {"benchmark.yml", "test.yml"}
    proc = run([exe, "-color=false", *files], timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_action_is_pinned_by_commit_sha():
    for wf in WORKFLOWS.glob("*.yml"):
        for line in wf.read_text().splitlines():
            match = re.search(r"uses:\s*([^\s#]+)", line)
            if match and not match.group(1).startswith("./"):
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", match.group(1)), f"{wf.name}: {line.strip()}"
                assert "#" in line, f"{wf.name}: say which release the SHA is: {line.strip()}"


def test_benchmark_workflow_shape():
    text = (WORKFLOWS / "benchmark.yml").read_text()
    for needle in ("workflow_dispatch:", "tier:", "qps:", "duration:", "id-token: write",
                   "concurrency:", "cancel-in-progress: false", "workload_identity_provider:",
                   ".venv/bin/inv ci --target gke", "--body-file", "gh pr create"):
        assert needle in text, needle
    teardown = text.split("- name: Teardown (always)", 1)[1].split("- name:", 1)[0]
    assert "if: always()" in teardown and ".venv/bin/python -m scripts.gke down --tier" in teardown


def test_test_workflow_runs_the_readme_command():
    readme = (REPO / "README.md").read_text()
    command = next(line.strip() for line in readme.splitlines()
                   if line.strip().startswith("bash setup.sh") and "pytest" in line)
    text = (WORKFLOWS / "test.yml").read_text()
    assert "pull_request:" in text and f"run: {command}\n" in text, command


# ------------------------------------------------------------------------------- the dry-run plan


def _index(steps, predicate, what: str) -> int:
    for i, step in enumerate(steps):
        if predicate(step):
            return i
    raise AssertionError(f"no step: {what}")


def _cmd(step) -> str:
    return " ".join(step.get("cmd") or [])


@pytest.mark.parametrize("tier", TIERS)
def test_dry_run_plan_is_a_complete_deployment_benchmark_and_teardown(tier):
    steps = gke.plan({"tier": tier, "tiers": [tier], "project": "ctbench-offline", "dry_run": True,
                      "systems": ["trillian", "tesseract"], "qps": 200, "duration": None, "warmup": 60})
    assert steps[0]["tool"] == "note" and steps[0]["what"].startswith(f"cost estimate, tier {tier}:")
    find = lambda pred, what: _index(steps, pred, what)  # noqa: E731
    init = find(lambda s: "terraform" in s["tool"] and " init " in f" {_cmd(s)} ", "terraform init")
    apply = find(lambda s: " apply " in f" {_cmd(s)} " and s["tool"] == "terraform", "terraform apply")
    output = find(lambda s: "output -json" in _cmd(s), "terraform output")
    creds = find(lambda s: "get-credentials" in _cmd(s), "get-credentials")
    ko = [i for i, s in enumerate(steps) if s["tool"] == "ko"]
    schema = find(lambda s: "job/trillian-schema" in s["what"] and "wait" in s["what"], "schema job wait")
    signer = find(lambda s: "rollout status deployment/trillian-signer" in _cmd(s), "signer rollout")
    tree = find(lambda s: _cmd(s).endswith("logs job/trillian-createtree"), "tree id")
    ctfe = find(lambda s: "rollout status deployment/ct-server" in _cmd(s), "ctfe rollout")
    tess = find(lambda s: "rollout status deployment/tesseract" in _cmd(s), "tesseract rollout")
    loads = [i for i, s in enumerate(steps) if "Indexed Job" in s["what"]]
    destroy = find(lambda s: "destroy" in _cmd(s), "terraform destroy")
    metrics = [i for i, s in enumerate(steps) if s["phase"] == "metrics"]
    assert 0 < init < apply < output < creds < min(ko) and max(ko) < schema < signer < tree < ctfe < tess
    assert len(ko) == 3 and {s["cwd"] for s in (steps[i] for i in ko)} == {"tools/trillian", "tools/ctgo", "tools/tesseract"}
    assert tess < loads[0] and len(loads) == 2 and loads[-1] < destroy
    assert steps[destroy]["always"] is True and steps[destroy]["phase"] == "down"
    assert metrics and min(metrics) > destroy     # Cloud Monitoring keeps the series after teardown
    assert steps[-1]["phase"] == "report"
    assert f"-var-file=tiers/{tier}.tfvars" in _cmd(steps[apply])
    assert f"prefix=ctbench/{tier}" in _cmd(steps[init])
    windows = [s["what"] for s in steps if s["tool"] == "clock"]
    assert windows == ["trillian: warmup 60s + 20s start slack (not measured)",
                       "trillian: measured window 900s, the signed tree read every 5s",
                       "tesseract: warmup 60s + 20s start slack (not measured)",
                       "tesseract: measured window 900s, the signed tree read every 5s"]
    reads = [s for s in steps if s["tool"] == "api" and s["url"].endswith("/o/checkpoint?alt=media")]
    assert reads, "TesseraCT's tree size comes from its GCS checkpoint"


def test_tiers_run_one_after_another_each_torn_down():
    steps = gke.plan({"tiers": ["small", "medium", "large"], "project": "ctbench-offline", "dry_run": True})
    order = [(s["tier"], s["phase"]) for s in steps if s["tool"] == "terraform" and
             any(w in _cmd(s) for w in (" apply ", " destroy "))]
    assert order == [("small", "deploy"), ("small", "down"), ("medium", "deploy"), ("medium", "down"),
                     ("large", "deploy"), ("large", "down")]


def test_native_hammers_build_their_images_and_jobs():
    steps = gke.plan({"tier": "small", "project": "ctbench-offline", "dry_run": True, "loadgen": "native"})
    ko = " ".join(_cmd(s) for s in steps if s["tool"] == "ko")
    assert "trillian/integration/ct_hammer" in ko and "tesseract/internal/hammer" in ko
    assert not any(s["tool"] == "docker" for s in steps)
    assert any("native-hammer-data" in s["what"] for s in steps)
