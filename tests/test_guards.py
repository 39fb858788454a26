"""The number guards of issue 5 §3, through the real measurement loop (hammer.measure).

Each case runs `measure` with real processes for the log's component and the load generator (`sleep`,
`sh`), a real metrics sampler and the real tree reader with real signature and consistency checks;
only the log's HTTP answers are scripted (a fake session serving STHs signed with a test key). So each
test exercises the same guard code a live run does, in a few seconds, without a deployment.
The pure judge() table is in tests/test_hammer.py; these are the behaviours around it: what stops the
loop, what the reason says, and that no QPS comes out of a run that did not really run.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time

import jsonschema
import psutil
import pytest
import requests
from jsonschema.exceptions import best_match
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from scripts import config, ctclient, hammer, proc, results, smoke
from scripts.errors import BadInput, RunFailed
from tests.test_ctverify import sign_sct, sign_sth

DURATION, WARMUP = 3.0, 0.5  # below the CLI minimum on purpose: the guards scale with --duration


class Log:
    """The scripted log: tree size as a function of time since start, signed with `key`."""

    def __init__(self, key, size_at, *, sign_with=None, fail=lambda t: False, root_for=None):
        self.key, self.size_at, self.sign_with, self.fail = key, size_at, sign_with, fail
        self.root_for = root_for or (lambda size, t: hashlib.sha256(str(size).encode()).digest())
        self.t0 = time.monotonic()

    def sth(self) -> dict:
        t = time.monotonic() - self.t0
        if self.fail(t):
            raise requests.ConnectionError("connection refused (scripted)")
        size = int(self.size_at(t))
        key = self.sign_with(t) if self.sign_with else self.key
        return sign_sth(key, size=size, timestamp=int(time.time() * 1000), root=self.root_for(size, t))


class FakeSession:
    def __init__(self, log: Log):
        self.log = log

    def get(self, url, timeout=None):
        doc = self.log.sth()

        class Resp:
            status_code = 200
            content = b"{}"

            @staticmethod
            def json():
                return doc
        return Resp()


@pytest.fixture()
def rig(tmp_path, monkeypatch):
    """A one-component 'log' (a sleep process), its public key and a starter for a scripted generator."""
    key = ec.generate_private_key(ec.SECP256R1())
    pub = tmp_path / "log.pub.pem"
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    comp = proc.spawn("fake_log", ["sleep", "120"], log_path=tmp_path / "fake_log.log")
    st = {"components": {"fake_log": comp},
          "systems": {"trillian": {"api": "rfc6962", "sth_url": "http://fake/ct/v1/get-sth", "public_key": str(pub),
                                   "components": ["fake_log"]}}}
    spawned: list[dict] = [comp]
    monkeypatch.setattr(hammer, "DRAIN_QUIET_S", 0.5)
    monkeypatch.setattr(hammer, "DRAIN_DEADLINE_S", 1.5)

    def use(log: Log, generator_cmd: list[str], finish_deadline_s: float = 0.0):
        monkeypatch.setattr(ctclient.requests, "Session", lambda: FakeSession(log))

        def starter(st_, settings, run_dir, budget):
            rec = proc.spawn("fake_gen", generator_cmd, log_path=tmp_path / "fake_gen.log")
            spawned.append(rec)
            return hammer.Generator("native", "scripted generator", {"fake_gen": rec}, {}, settings.qps,
                                    finish_deadline_s=finish_deadline_s)
        monkeypatch.setitem(hammer.STARTERS, ("native", "trillian"), starter)

    def run():
        settings = config.Settings(systems=("trillian",), qps=50, duration=DURATION, warmup=WARMUP, loadgen="native")
        started = time.monotonic()
        obs = hammer.measure(st, "trillian", settings, tmp_path, progress=False, log=lambda *a: None)
        obs["_wall"] = time.monotonic() - started
        return obs

    yield {"key": key, "st": st, "comp": comp, "use": use, "run": run}
    for rec in spawned:
        proc.stop(rec, grace=2)
        assert not proc.alive(rec)


def growing(rate: float, start: int = 100):
    return lambda t: start + rate * t


def assert_failed(obs: dict, *needles: str) -> None:
    assert obs["status"] == "failed", obs.get("reason")
    assert obs["qps"] is None
    for needle in needles:
        assert needle in obs["reason"], obs["reason"]
    entry = results.system_entry(obs)
    _validate_system(entry)
    assert entry["qps"] is None and entry["status"] == "failed" and entry["reason"]


def test_a_real_looking_run_passes(rig):
    """The control: the rig itself does not make runs fail."""
    rig["use"](Log(rig["key"], growing(40)), ["sleep", "60"])
    obs = rig["run"]()
    assert obs["status"] == "ok", obs["reason"]
    assert obs["qps"] == pytest.approx(40, rel=0.15)
    assert obs["window_s"] >= DURATION * config.MIN_WINDOW_FRACTION


def test_generator_that_exits_within_a_second_after_one_entry(rig):
    # The seed bug: a hammer crashed at start, one stray write, "137 QPS" published.
    rig["use"](Log(rig["key"], lambda t: 100 + (t > 0.3)), ["sh", "-c", "sleep 0.5; exit 0"])
    obs = rig["run"]()
    assert_failed(obs, "load generator exited before the window ended", "fake_gen exit 0")
    assert "window_end" not in obs and obs["_wall"] < WARMUP + DURATION  # stopped at once


def test_generator_failing_every_request_exits_nonzero(rig):
    # ct_hammer exits 1 on errors (every add-chain refused).
    rig["use"](Log(rig["key"], lambda t: 100), ["sh", "-c", "sleep 0.3; exit 1"])
    assert_failed(rig["run"](), "fake_gen exit 1")


@pytest.mark.parametrize("case", ["every response failing", "add-chain succeeds but the tree does not grow"])
def test_tree_that_does_not_grow_while_the_generator_runs(rig, case):
    # TesseraCT's hammer retries failed writes forever and never exits: only the tree tells.
    rig["use"](Log(rig["key"], lambda t: 100), ["sleep", "60"])
    obs = rig["run"]()
    assert_failed(obs, "only 0 entries integrated")
    assert obs["entries_integrated"] == 0


def test_too_few_entries(rig):
    rig["use"](Log(rig["key"], growing(1)), ["sleep", "60"])
    assert_failed(rig["run"](), f"(minimum {config.MIN_ENTRIES})")


def test_tree_that_shrinks(rig):
    rig["use"](Log(rig["key"], lambda t: 100 + 40 * t if t < 1.5 else 50), ["sleep", "60"])
    obs = rig["run"]()
    assert_failed(obs, "signed tree failed verification", "tree shrank")
    assert "window_end" not in obs


def test_tree_with_two_roots_for_one_size(rig):
    # Same size, different root: a fork (the log is inconsistent with what it signed before).
    rig["use"](Log(rig["key"], lambda t: 100 + 40 * min(t, 1.2),
                   root_for=lambda size, t: bytes([int(t > 2.5)]) * 32), ["sleep", "60"])
    obs = rig["run"]()
    assert_failed(obs, "two different roots")


def test_tree_head_signed_by_another_key(rig):
    other = ec.generate_private_key(ec.SECP256R1())
    rig["use"](Log(rig["key"], growing(40), sign_with=lambda t: other if t > 1.5 else rig["key"]), ["sleep", "60"])
    assert_failed(rig["run"](), "signed tree failed verification")


def test_tree_head_unreadable(rig, monkeypatch):
    monkeypatch.setattr(hammer, "READ_FAILURES_FATAL", 2)
    rig["use"](Log(rig["key"], growing(40), fail=lambda t: t > 1), ["sleep", "60"])
    assert_failed(rig["run"](), "cannot read trillian's signed tree head", "served by ct_server")


def test_component_that_dies_during_the_window(rig):
    rig["use"](Log(rig["key"], growing(40)), ["sleep", "60"])
    threading.Timer(WARMUP + 1.2, lambda: os.kill(rig["comp"]["pid"], signal.SIGKILL)).start()
    obs = rig["run"]()
    assert_failed(obs, "component died during the run: fake_log")
    assert "window_end" not in obs


def test_component_that_stalls_fires_a_deadline(rig, monkeypatch):
    monkeypatch.setattr(hammer, "STALL_DEADLINE_S", 1.0)
    rig["use"](Log(rig["key"], growing(40)), ["sleep", "60"])
    threading.Timer(0.2, lambda: os.kill(rig["comp"]["pid"], signal.SIGSTOP)).start()
    obs = rig["run"]()
    assert_failed(obs, "component stalled", "fake_log")
    assert "window_end" not in obs  # the deadline fired before the window could end


def test_generator_that_stalls_fires_a_deadline(rig, monkeypatch):
    monkeypatch.setattr(hammer, "STALL_DEADLINE_S", 1.0)
    rig["use"](Log(rig["key"], growing(40)), ["sleep", "60"])
    timer = threading.Timer(0.2, lambda: [os.kill(p.pid, signal.SIGSTOP) for p in psutil.Process().children()
                                                   if p.name() == "sleep" and p.pid != rig["comp"]["pid"]])
    timer.start()
    assert_failed(rig["run"](), "component stalled", "fake_gen")


def test_near_zero_elapsed_is_never_a_number():
    for window in (0.0, 0.007, 1.0):
        status, reason = hammer.judge({"window_s": window, "entries_integrated": 5000}, DURATION)
        assert status == "failed" and "window too short" in reason


def test_schema_refuses_a_number_for_a_failed_system():
    with pytest.raises(BadInput, match="qps"):
        _validate_system({"status": "failed", "reason": "generator exited", "qps": 137.0})
    with pytest.raises(BadInput):
        _validate_system({"status": "ok", "reason": "", "qps": 0, "entries_integrated": 0, "window_s": 0.007,
                          "resources": {}, "generator": {}})
    with pytest.raises(BadInput):
        _validate_system({"status": "failed", "reason": "", "qps": None})  # a failure always says why


def _validate_system(entry: dict) -> None:
    schema = json.loads(results.SCHEMA_FILE.read_text())
    validator = jsonschema.Draft202012Validator({**schema["$defs"]["system"], "$defs": schema["$defs"]})
    error = best_match(validator.iter_errors(entry))
    if error is not None:
        raise BadInput(f"{'/'.join(map(str, error.absolute_path))}: {error.message}")


def test_sct_that_does_not_verify_fails_the_system(tmp_path, monkeypatch):
    """An add-chain that answers 200 with an SCT not signed by the log's key is a failed smoke test."""
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    pub = tmp_path / "log.pub.pem"
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    comp = proc.spawn("fake_log", ["sleep", "60"], log_path=tmp_path / "fake_log.log")
    try:
        st = {"pki": {"dir": str(tmp_path)}, "components": {"ct_server": comp},
              "systems": {"trillian": {"api": "rfc6962", "sth_url": "http://fake/sth", "add_chain_url": "http://fake/add",
                                       "public_key": str(pub), "components": ["ct_server"]}}}
        monkeypatch.setattr(ctclient.requests, "Session", lambda: FakeSession(Log(key, growing(40))))
        monkeypatch.setattr(smoke.pki, "fresh_chains", lambda layout, n: [[f"leaf{i}".encode(), b"ca"] for i in range(n)])
        signer = {"n": 0}

        def add_chain(session, url, chain, timeout):
            signer["n"] += 1
            # The last SCT is signed by another key: one bad SCT among good ones must be caught.
            sct = sign_sct(key, chain[0])
            if signer["n"] == smoke.SMOKE_CHAINS:
                sct = {**sign_sct(other, chain[0]), "id": sct["id"]}  # this log's id, another key's signature
            return ctclient.AddResult(status=200, body=b"{}", sct=sct)
        monkeypatch.setattr(smoke.ctclient, "add_chain", add_chain)
        with pytest.raises(RunFailed, match="SCT does not verify"):
            smoke.smoke_system(st, "trillian", log=lambda *a: None)
    finally:
        proc.stop(comp, grace=2)


def test_component_stalled_briefly_inside_the_window_fails_the_run(rig):
    # A stall shorter than the deadline: the window still ends on time, but what it measured includes a
    # suspended log (the fault matrix got "2.2 entries/s" from a TesseraCT stopped for most of a window).
    rig["use"](Log(rig["key"], growing(40)), ["sleep", "60"])
    pid = rig["comp"]["pid"]
    threading.Timer(WARMUP + 0.8, lambda: os.kill(pid, signal.SIGSTOP)).start()
    threading.Timer(WARMUP + 2.3, lambda: os.kill(pid, signal.SIGCONT)).start()
    obs = rig["run"]()
    assert_failed(obs, "component stalled", "fake_log")
    assert "window_end" in obs  # not the deadline: the window completed, and still no number


def test_stall_at_the_window_end_does_not_wait_for_the_generator(rig):
    # The uniform generator is normally given time to finish its schedule after a clean window; after a
    # stall its requests hang until they time out, and the run sat there (~40 s in the fault matrix).
    rig["use"](Log(rig["key"], growing(40)), ["sleep", "60"], finish_deadline_s=30)
    pid = rig["comp"]["pid"]
    threading.Timer(WARMUP + DURATION - 0.8, lambda: os.kill(pid, signal.SIGSTOP)).start()
    try:
        obs = rig["run"]()
    finally:
        os.kill(pid, signal.SIGCONT)
    assert_failed(obs, "component stalled", "fake_log")
    assert obs["_wall"] < WARMUP + DURATION + 8, obs["_wall"]
