"""The gke bench step end to end against a simulated cluster: every kubectl/terraform call and every
API read is answered by a fake that keeps two growing, correctly SIGNED logs, on a fake clock.

What this checks that the dry-run plan cannot: the measured QPS is the signed tree's growth over the
window, the results document passes the harness's results schema, a failed load Job or a missing
result file turns a system into `failed` with a reason and no QPS (METHOD rule 2).
"""
from __future__ import annotations

import base64
import hashlib
import json
import struct

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pathlib import Path

from scripts import ctverify, gke, paths
from scripts import gke_spec as spec
from scripts.errors import RunFailed

RATE = {"trillian": 150.0, "tesseract": 180.0}   # entries/s the simulated logs integrate while loaded


class Clock:
    def __init__(self):
        self.now = 1_796_364_000.0

    def time(self):
        return self.now

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += max(seconds, 0.001)


def _ds(key, data: bytes) -> bytes:
    sig = key.sign(data, ec.ECDSA(hashes.SHA256()))
    return bytes([4, 3]) + struct.pack(">H", len(sig)) + sig


def _pem(key) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


class FakeCluster(gke.Executor):
    """An Executor whose commands and API calls are answered by a simulated GKE deployment."""

    def __init__(self, clock: Clock, origin: str, *, job_fails: str | None = None, lost_result: str | None = None,
                 destroy_fails: bool = False, tmp: Path | None = None, client_bound: str | None = None):
        super().__init__(dry_run=False, log=lambda _t: None)
        self.added = {"trillian": 0, "tesseract": 0}
        self.applied: list[str] = []
        self.destroy_fails = destroy_fails
        self.client_bound = client_bound
        self.tmp = tmp
        self.clock = clock
        self.origin = origin
        self.keys = {"trillian": ec.generate_private_key(ec.SECP256R1()),
                     "tesseract": ec.generate_private_key(ec.SECP256R1())}
        self.loaded: dict[str, tuple[float, float]] = {}   # system -> (load start, load end)
        self.job_fails = job_fails
        self.lost_result = lost_result
        self.jobs: dict[str, str] = {}

    def outputs(self) -> dict:
        out = spec.placeholder_outputs("ctbench-offline", "small")
        out["ctfe_public_key_pem"] = _pem(self.keys["trillian"])
        out["tesseract_public_key_pem"] = _pem(self.keys["tesseract"])
        out["mysql_password"] = "pw"
        out["ctfe_private_key_pem"] = self.keys["trillian"].private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption()).decode()
        return out

    def size(self, system: str) -> int:
        base = 5 + self.added[system]
        if system not in self.loaded:
            return base
        start, end = self.loaded[system]
        return base + int(RATE[system] * max(0.0, min(self.clock.now, end) - start))

    def sth(self) -> str:
        size, ts, root = self.size("trillian"), int(self.clock.now * 1000), hashlib.sha256(b"r").digest()
        sig = _ds(self.keys["trillian"], struct.pack(">BBQQ", 0, 1, ts, size) + root)
        return json.dumps({"tree_size": size, "timestamp": ts, "sha256_root_hash": base64.b64encode(root).decode(),
                           "tree_head_signature": base64.b64encode(sig).decode()})

    def checkpoint(self) -> bytes:
        key = self.keys["tesseract"]
        size, ts, root = self.size("tesseract"), int(self.clock.now * 1000), hashlib.sha256(b"t").digest()
        spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        kh = hashlib.sha256(self.origin.encode() + b"\n\x05" + hashlib.sha256(spki).digest()).digest()[:4]
        sig = kh + struct.pack(">Q", ts) + _ds(key, struct.pack(">BBQQ", 0, 1, ts, size) + root)
        b64 = base64.b64encode
        return (f"{self.origin}\n{size}\n{b64(root).decode()}\n\n\u2014 {self.origin} {b64(sig).decode()}\n").encode()

    # -- the Executor interface
    def sct(self, system: str, body: str) -> str:
        chain = [base64.b64decode(c) for c in json.loads(body)["chain"]]
        key, ts = self.keys[system], int(self.clock.now * 1000)
        spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        signed = ctverify.sct_signed_data(0, ts, b"", chain)
        self.added[system] += 1
        return json.dumps({"sct_version": 0, "id": base64.b64encode(hashlib.sha256(spki).digest()).decode(),
                           "timestamp": ts, "extensions": "", "signature": base64.b64encode(_ds(key, signed)).decode()})

    def run(self, phase, cmd, *, what, timeout, env=None, cwd=None, input=None, check=True, secrets=(),
            dry_stdout=""):
        self._record(phase, Path(cmd[0]).name, what, cmd=list(cmd))
        if cmd[-3:] == ["apply", "-f", "-"]:
            self.applied.append(input or "")
        text = " ".join(cmd)
        out = ""
        if self.destroy_fails and " destroy " in f" {text} ":
            raise RunFailed("exit 1 from terraform: Error waiting for instance to delete")
        if "state list" in text:
            out = "google_sql_database_instance.trillian\n" if self.destroy_fails else ""
        elif "output -json" in text:
            out = json.dumps({k: {"value": v} for k, v in self.outputs().items()})
        elif cmd[1:3] == ["digest", cmd[2]] and "crane" in cmd[0]:
            out = "sha256:" + "1" * 64
        elif Path(cmd[0]).name == "ko":
            refs = next(a.split("=", 1)[1] for a in cmd if a.startswith("--image-refs="))
            names = [a.rsplit("/", 1)[-1] for a in cmd if a.startswith("github.com/")]
            Path(refs).parent.mkdir(parents=True, exist_ok=True)
            Path(refs).write_text("".join(f"{env['KO_DOCKER_REPO']}/{n}@sha256:{'2' * 64}\n" for n in names))
        elif cmd[:2] == ["go", "-C"]:
            schema = self.tmp / "trillian" / "storage" / "mysql" / "schema"
            schema.mkdir(parents=True, exist_ok=True)
            (schema / "storage.sql").write_text("CREATE TABLE Trees (TreeId BIGINT);\n")
            out = str(self.tmp / "trillian")
        elif "logs job/trillian-createtree" in text:
            out = "7012345678\n"
        elif "create --raw" in text and "add-chain" in text:
            out = self.sct("trillian" if "ct-server" in text else "tesseract", input)
        elif "get --raw" in text and "get-sth" in text:
            out = self.sth()
        elif cmd[-3:] == ["apply", "-f", "-"] and input and "kind: Job" in input and "name: load-" in input:
            name = input.split("name: ", 1)[1].split("\n", 1)[0].strip()
            system = "trillian" if "load-trillian" in name else "tesseract"
            self.jobs[name] = system
            duration = float(input.split("--duration ", 1)[1].split()[0])   # warmup included
            self.loaded[system] = (self.clock.now + 20, self.clock.now + 20 + duration)
        elif "get pods" in text:
            self.clock.sleep(20)                                           # image pull + scheduling
            out = json.dumps({"items": [{"status": {"phase": "Running"}}]})
        elif "get job/" in text and "get job/load-" not in text:
            out = json.dumps({"status": {"conditions": [{"type": "Complete", "status": "True"}]}})
        elif "get job/" in text:
            name = text.split("get job/", 1)[1].split()[0]
            system = self.jobs[name]
            self.clock.now = max(self.clock.now, self.loaded[system][1] + 1)
            failed = self.job_fails == system
            out = json.dumps({"status": {"conditions": [
                {"type": "Failed" if failed else "Complete", "status": "True",
                 "reason": "BackoffLimitExceeded" if failed else "", "message": ""}]}})
        return __import__("subprocess").CompletedProcess(cmd, 0, out, "")

    def api(self, phase, method, url, *, what, call, dry_result):
        self._record(phase, "api", what, method=method, url=url)
        if url.startswith("https://monitoring.googleapis.com/"):
            return []
        if url.startswith("https://secretmanager.googleapis.com/v1/"):
            # Secret Manager answers with the project NUMBER in the name
            name = url.split("/v1/", 1)[1].replace("projects/ctbench-offline/", "projects/123456789012/")
            return {"name": name, "state": "ENABLED"}
        if url.endswith("/o/checkpoint?alt=media"):
            return self.checkpoint()
        if "/o?prefix=" in url:
            system = "trillian" if "trillian" in url else "tesseract"
            if self.lost_result == system:
                return []
            return [{"name": f"runs/r/{system}/0.json"}]
        if "alt=media" in url:
            system = "trillian" if "trillian" in url else "tesseract"
            start, end = self.loaded[system]
            return json.dumps({"status": "completed", "label": f"{system}-0", "start_unix": start,
                               "per_second_ok": [int(RATE[system])] * int(end - start),
                               "client_bound": system == self.client_bound,
                               "client_bound_reasons": ["sender CPU saturated"] if system == self.client_bound else []
                               }).encode()
        raise AssertionError(f"unexpected API call {url}")


@pytest.fixture
def sim(monkeypatch, tmp_path):
    import google.auth
    clock = Clock()
    monkeypatch.setattr(gke, "time", clock)
    monkeypatch.setattr(google.auth, "default", lambda *a, **k: (object(), "ctbench-offline"))
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(paths, "STATE_DIR", tmp_path / "state")
    origin = spec.TESSERACT_ORIGIN

    monkeypatch.setattr(paths, "PKI_DIR", tmp_path / "pki")

    def start(**kwargs):
        fake = FakeCluster(clock, origin, tmp=tmp_path / "modcache", **kwargs)
        # What deploy leaves behind: public outputs and the image digests (no secrets).
        paths.STATE_DIR.mkdir(parents=True)
        public = {k: v for k, v in fake.outputs().items() if k not in spec.SENSITIVE_OUTPUTS}
        images = spec.placeholder_images(public["image_repository"])
        (paths.STATE_DIR / "gke-small.json").write_text(json.dumps({"outputs": public, "images": images,
                                                                      "tree_id": 42}))
        monkeypatch.setattr(gke, "_executor", lambda o, log=print: fake)
        return fake
    return start


OPTS = {"tier": "small", "tiers": ["small"], "systems": ["trillian", "tesseract"], "qps": 200, "duration": 120,
        "duration_explicit": True, "warmup": 30, "dry_run": False, "project": "ctbench-offline"}


def test_bench_measures_signed_tree_growth_and_writes_valid_results(sim):
    fake = sim()
    doc = gke.bench(dict(OPTS), log=lambda _t: None)["small"]
    assert doc["status"] == "ok" and doc["target"] == "gke" and doc["tier"] == "small"
    for system in ("trillian", "tesseract"):
        res = doc["systems"][system]
        assert res["status"] == "ok", res["reason"]
        # the simulated log integrates RATE entries/s for the whole window
        assert res["qps"] == pytest.approx(RATE[system], rel=0.02)
        assert res["window_s"] >= 0.9 * 120
        assert res["entries_integrated"] == res["tree_size_window_end"] - res["tree_size_window_start"]
        assert res["generator"]["kind"] == "uniform" and res["generator"]["parallelism"] == 1
        # the SCTs the generator got in the window match what was integrated: sustainable, stable
        assert res["accepted_in_window"] == pytest.approx(res["entries_integrated"], rel=0.05)
        assert res["sustainable"] is True and res["stability"]["unstable"] is False
        assert len(res["tree"]) >= 120 / 5                  # the tree was read every 5 s
        assert res["limited_by"].startswith("log")         # 150-180/s integrated of 200/s offered
    saved = json.loads((paths.RESULTS_DIR / doc["run_id"] / "results.json").read_text())
    assert saved["systems"]["tesseract"]["qps"] == doc["systems"]["tesseract"]["qps"]
    assert saved["gke"]["images"]["loadgen"].endswith("@sha256:" + "0" * 64)   # recorded at deploy
    assert saved["gke"]["tree_id"] == 42
    assert any(s.get("url", "").endswith("/o/checkpoint?alt=media") for s in fake.steps)


def test_a_failed_load_job_is_a_failed_run_without_qps(sim):
    sim(job_fails="trillian")
    doc = gke.bench(dict(OPTS), log=lambda _t: None)["small"]
    res = doc["systems"]["trillian"]
    assert res["status"] == "failed" and res["qps"] is None
    assert "load generator exited" in res["reason"]
    assert doc["systems"]["tesseract"]["status"] == "ok"
    assert doc["status"] == "failed"


def test_bench_without_a_deployment_says_so(sim, tmp_path):
    sim()
    (paths.STATE_DIR / "gke-small.json").unlink()
    from scripts.errors import BadInput
    with pytest.raises(BadInput, match="images of tier small are unknown"):
        gke.bench(dict(OPTS), log=lambda _t: None)


def test_a_missing_result_file_is_a_failed_run(sim):
    sim(lost_result="tesseract")
    doc = gke.bench(dict(OPTS), log=lambda _t: None)["small"]
    res = doc["systems"]["tesseract"]
    assert res["status"] == "failed" and res["qps"] is None and "0 of 1 result files" in res["reason"]


def test_an_unverifiable_tree_head_fails_the_system_not_the_run(sim, monkeypatch):
    fake = sim()
    original = fake.sth
    monkeypatch.setattr(fake, "sth", lambda: original().replace('"tree_size": ', '"tree_size": 1'))
    doc = gke.bench(dict(OPTS), log=lambda _t: None)["small"]
    assert doc["systems"]["trillian"]["status"] == "failed"
    assert doc["systems"]["trillian"]["qps"] is None
    assert "signature" in doc["systems"]["trillian"]["reason"].lower()
    assert doc["systems"]["tesseract"]["status"] == "ok"


@pytest.fixture
def reports(monkeypatch):
    from scripts import update_readme
    rendered: list[dict] = []
    monkeypatch.setattr(update_readme, "report", lambda doc, **kw: rendered.append(doc))
    return rendered


def test_ci_deploys_smokes_benches_tears_down_then_reports(sim, reports):
    fake = sim()
    (paths.STATE_DIR / "gke-small.json").unlink()          # ci starts from nothing
    docs = gke.ci(dict(OPTS), log=lambda _t: None)
    doc = docs["small"]
    assert doc["status"] == "ok" and reports == [doc]
    assert doc["gke"]["tree_id"] == 7012345678
    assert doc["gke"]["images"]["ct_server"].endswith("@sha256:" + "2" * 64)
    assert doc["gke"]["images"]["mysql_client"] == "docker.io/library/mysql@sha256:" + "1" * 64
    # TesseraCT is given exactly the names Secret Manager answered with (project number, numeric version)
    tesseract = next(m for m in fake.applied if "name: tesseract\n" in m and "kind: Deployment" in m)
    assert ("--signer_private_key_secret_name=projects/123456789012/secrets/"
            "ctb-small-tesseract-signer-private/versions/1") in tesseract
    assert len([s for s in fake.steps if s.get("url", "").startswith("https://secretmanager")]) == 2
    for system in ("trillian", "tesseract"):
        assert doc["systems"][system]["resources"]["source"] == "Cloud Monitoring"
        assert "cost" in doc["systems"][system]
    phases = [s["phase"] for s in fake.steps]
    assert phases.index("down") > max(i for i, p in enumerate(phases) if p == "bench")
    assert phases.index("metrics") > phases.index("down")
    assert not (paths.STATE_DIR / "gke-small.json").exists()       # down removed the local state
    # smoke proved each log: a verified SCT and one more entry in the signed tree
    assert fake.added == {"trillian": 1, "tesseract": 1}
    secret = next(s for s in fake.steps if "trillian-mysql" in s["what"])
    assert "pw" not in json.dumps(secret)


def test_a_failed_teardown_keeps_results_and_lists_what_is_left(sim, reports):
    sim(destroy_fails=True)
    (paths.STATE_DIR / "gke-small.json").unlink()
    with pytest.raises(RunFailed, match=r"terraform destroy failed for tier small .*google_sql_database_instance"):
        gke.ci(dict(OPTS), log=lambda _t: None)
    assert len(reports) == 1 and reports[0]["status"] == "ok"       # the numbers were still published
    saved = sorted((paths.RESULTS_DIR).glob("*/results.json"))
    assert saved, "results kept on disk"


def test_a_client_bound_generator_is_labelled_so(sim):
    sim(client_bound="tesseract")
    doc = gke.bench(dict(OPTS), log=lambda _t: None)["small"]
    res = doc["systems"]["tesseract"]
    assert res["resources"]["labels"] == ["client-bound"]
    assert res["limited_by"] == "load generator (client-bound)"
    assert doc["systems"]["trillian"]["resources"]["labels"] == []
