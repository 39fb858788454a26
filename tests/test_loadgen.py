"""loadgen units: schedule on a fake clock, classification, histogram math, certificates, spec checks."""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import math
import struct

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from scripts import ctverify
from scripts.errors import BadInput
from scripts.loadgen import classify as cls
from scripts.loadgen import stats
from scripts.loadgen.certs import CertPool, ChainShape, Issuer, LeafFactory, der_length
from scripts.loadgen.runner import LoadSpec
from scripts.loadgen.schedule import TICK_S, Schedule, pace


# --- a throwaway PKI ----------------------------------------------------------------------------------

def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(tmp_path):
    now = dt.datetime.now(dt.timezone.utc)
    root_key, int_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def ca(subject, key, issuer, issuer_key, pathlen):
        return (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=True, path_length=pathlen), critical=True)
                .sign(issuer_key, hashes.SHA256()))

    root = ca("Test Root", root_key, "Test Root", root_key, None)
    inter = ca("Test Intermediate", int_key, "Test Root", root_key, 0)
    log_key = ec.generate_private_key(ec.SECP256R1())
    files = {
        "root": root.public_bytes(serialization.Encoding.PEM),
        "intermediate": inter.public_bytes(serialization.Encoding.PEM),
        "intermediate_key": int_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()),
        "log_public_key": log_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo),
    }
    paths = {}
    for name, data in files.items():
        (tmp_path / f"{name}.pem").write_bytes(data)
        paths[name] = str(tmp_path / f"{name}.pem")
    return paths, root, inter, log_key


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


# --- schedule -----------------------------------------------------------------------------------------

class FakeClock:
    def __init__(self, cost_per_dispatch: float = 0.0):
        self.now = 0.0
        self.cost = cost_per_dispatch
        self.sleeps = 0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += max(0.0, seconds)


def run_pace(schedule, duration, clock):
    seen = []

    def dispatch(intended, lag):
        assert clock.now >= intended - 1e-12, "dispatched before its intended time"
        assert lag == pytest.approx(clock.now - intended, abs=1e-12)
        seen.append((intended, lag))
        clock.now += clock.cost

    count = asyncio.run(pace(schedule, duration, clock, clock.sleep, dispatch))
    assert count == len(seen)
    return seen


@pytest.mark.parametrize("rate, duration", [(1000, 10), (2000, 3), (7, 10), (0.5, 10), (333.3, 3)])
def test_constant_rate_exact_on_fake_clock(rate, duration):
    clock = FakeClock()
    seen = run_pace(Schedule(rate), duration, clock)
    assert len(seen) == math.ceil(rate * duration)
    # Never early; late by less than one timer tick (arrivals closer than a tick go out together).
    assert all(0 <= lag < TICK_S + 1e-9 for _, lag in seen)
    assert clock.sleeps <= min(len(seen), duration / TICK_S + 1)
    assert seen[0][0] == 0.0
    assert seen[-1][0] == pytest.approx((len(seen) - 1) / rate)
    gaps = {round(b[0] - a[0], 9) for a, b in zip(seen, seen[1:])}
    assert gaps == {round(1 / rate, 9)}


def test_poisson_rate_and_reproducible():
    rate, duration = 1000, 20
    seen = run_pace(Schedule(rate, "poisson", seed=7), duration, FakeClock())
    n = rate * duration
    assert abs(len(seen) - n) < 4 * math.sqrt(n)
    again = run_pace(Schedule(rate, "poisson", seed=7), duration, FakeClock())
    assert [t for t, _ in again] == [t for t, _ in seen]
    other = run_pace(Schedule(rate, "poisson", seed=8), duration, FakeClock())
    assert [t for t, _ in other][:10] != [t for t, _ in seen][:10]


def test_slow_dispatch_shows_as_lag_not_fewer_arrivals():
    # Each dispatch costs 2 ms of "CPU" at 1000/s: the schedule is never slowed, lag accumulates.
    seen = run_pace(Schedule(1000), 1.0, FakeClock(cost_per_dispatch=0.002))
    assert len(seen) == 1000
    lags = [lag for _, lag in seen]
    assert lags[0] == 0 and lags[-1] == pytest.approx(0.999, abs=0.002)


def test_schedule_rejects_bad_rate():
    for rate in (0, -1):
        with pytest.raises(ValueError):
            Schedule(rate)
    with pytest.raises(ValueError):
        Schedule(1, "bursty")


# --- classification -----------------------------------------------------------------------------------

@pytest.mark.parametrize("status, body, want", [
    (200, b"", None),
    (429, b"", cls.PUSHBACK),
    (503, b"", cls.PUSHBACK),
    (500, b"Pushback: too many outstanding", cls.PUSHBACK),
    (502, b"upstream PUSHBACK", cls.PUSHBACK),
    (500, b"internal error", cls.SERVER_ERROR),
    (504, b"", cls.SERVER_ERROR),
    (400, b"pushback", cls.CLIENT_ERROR),
    (404, b"", cls.CLIENT_ERROR),
    (413, b"", cls.CLIENT_ERROR),
    (201, b"", cls.SERVER_ERROR),
    (302, b"", cls.SERVER_ERROR),
])
def test_classify_status(status, body, want):
    assert cls.classify_status(status, body) == want


def test_classes_are_exhaustive_and_distinct():
    assert len(set(cls.CLASSES)) == len(cls.CLASSES) == 7
    assert cls.OK not in cls.ERRORS


def signed_sct(log_key, leaf: bytes, extensions: bytes = b"") -> bytes:
    ts = 1_700_000_000_000
    data = struct.pack(">BBQH", 0, 0, ts, 0) + len(leaf).to_bytes(3, "big") + leaf + struct.pack(
        ">H", len(extensions)) + extensions
    sig = log_key.sign(data, ec.ECDSA(hashes.SHA256()))
    spki = log_key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return json.dumps({"sct_version": 0, "id": base64.b64encode(hashlib.sha256(spki).digest()).decode(),
                       "timestamp": ts, "extensions": base64.b64encode(extensions).decode(),
                       "signature": base64.b64encode(bytes([4, 3]) + struct.pack(">H", len(sig)) + sig).decode()
                       }).encode()


def test_verify_batch(pki):
    paths, _, inter, log_key = pki
    factory = LeafFactory(Issuer.from_files(paths["intermediate"], paths["intermediate_key"]))
    leaf, other = factory.leaf(), factory.leaf()
    pub_der = ctverify.spki_der(log_key.public_key())
    cls.init_verifier(pub_der, factory.tail_der)
    index_ext = b"\x00\x00\x05" + (77).to_bytes(5, "big")
    verdicts = cls.verify_batch([(signed_sct(log_key, leaf), leaf), (signed_sct(log_key, leaf, index_ext), leaf),
                                 (signed_sct(log_key, other), leaf), (b"<html>", leaf), (b"{}", leaf)])
    assert [v.reason is None for v in verdicts] == [True, True, False, False, False]
    assert verdicts[0].timestamp_ms == 1_700_000_000_000 and verdicts[0].leaf_index is None
    assert verdicts[1].leaf_index == 77
    assert "does not verify" in verdicts[2].reason
    assert "not JSON" in verdicts[3].reason
    assert "missing field" in verdicts[4].reason


# --- histogram math -----------------------------------------------------------------------------------

def test_summary_of_known_values():
    hist = stats.new_histogram()
    for ms in range(1, 1001):          # 1..1000 ms, uniform
        stats.record_s(hist, ms / 1000)
    s = stats.summary_ms(hist)
    assert s["count"] == 1000
    assert s["p50"] == pytest.approx(500, rel=2e-3)
    assert s["p90"] == pytest.approx(900, rel=2e-3)
    assert s["p99"] == pytest.approx(990, rel=2e-3)
    assert s["p99_9"] == pytest.approx(999, rel=2e-3)
    assert s["max"] == pytest.approx(1000, rel=2e-3)
    assert s["mean"] == pytest.approx(500.5, rel=2e-3)


def test_summary_single_outlier_is_the_max():
    hist = stats.new_histogram()
    for _ in range(999):
        stats.record_s(hist, 0.001)
    stats.record_s(hist, 2.5)
    s = stats.summary_ms(hist)
    assert s["p99"] == pytest.approx(1.0, rel=2e-3)
    assert s["p99_9"] == pytest.approx(1.0, rel=2e-3)
    assert s["max"] == pytest.approx(2500, rel=2e-3)


def test_summary_empty_and_clamped():
    assert stats.summary_ms(stats.new_histogram()) == {
        "p50": None, "p90": None, "p99": None, "p99_9": None, "max": None, "mean": None, "count": 0}
    hist = stats.new_histogram()
    stats.record_s(hist, -1.0)       # clock oddities never raise, never vanish
    stats.record_s(hist, 10 ** 6)
    s = stats.summary_ms(hist)
    assert s["count"] == 2 and s["max"] == pytest.approx(3_600_000, rel=2e-3)


def test_per_second_and_cov():
    ps = stats.PerSecond()
    for t in (0.1, 0.9, 1.0, 2.5, -0.01):
        ps.add(t)
    assert ps.series() == [3, 1, 1]
    assert ps.series(5) == [3, 1, 1, 0, 0]
    mean, cov = stats.mean_and_cov([10, 10, 10])
    assert mean == 10 and cov == 0
    mean, cov = stats.mean_and_cov([5, 15])
    assert mean == 10 and cov == pytest.approx(0.5)
    assert stats.mean_and_cov([]) == (None, None)
    assert stats.rate(10, 4) == 2.5 and stats.rate(1, 0) is None


# --- certificates -------------------------------------------------------------------------------------

def test_der_length():
    assert der_length(5) == b"\x05"
    assert der_length(0x80) == b"\x81\x80"
    assert der_length(0x1234) == b"\x82\x12\x34"


def test_leaves_are_unique_fresh_and_chain_to_the_intermediate(pki):
    paths, root, inter, _ = pki
    factory = LeafFactory(Issuer.from_files(paths["intermediate"], paths["intermediate_key"]))
    now = dt.datetime.now(dt.timezone.utc)
    leaves = [x509.load_der_x509_certificate(factory.leaf()) for _ in range(200)]
    assert len({c.serial_number for c in leaves}) == 200
    assert len({c.fingerprint(hashes.SHA256()) for c in leaves}) == 200
    for cert in leaves[:20]:
        cert.verify_directly_issued_by(inter)
        assert cert.issuer == inter.subject
        age = now - cert.not_valid_before_utc
        assert dt.timedelta(minutes=3) < age < dt.timedelta(minutes=7)
        assert cert.not_valid_after_utc > now + dt.timedelta(days=6)
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)


def test_add_chain_body(pki):
    paths, root, inter, _ = pki
    issuer = Issuer.from_files(paths["intermediate"], paths["intermediate_key"], paths["root"])
    for length, tail in ((2, [inter]), (3, [inter, root])):
        factory = LeafFactory(issuer, ChainShape(chain_length=length))
        leaf, body = factory.item()
        chain = [base64.b64decode(c) for c in json.loads(body)["chain"]]
        assert chain[0] == leaf
        assert chain[1:] == [c.public_bytes(serialization.Encoding.DER) for c in tail]


def test_chain_shape_knobs(pki):
    paths, _, inter, _ = pki
    issuer = Issuer.from_files(paths["intermediate"], paths["intermediate_key"])
    small = LeafFactory(issuer, ChainShape(leaf_keys=1)).leaf()
    big = LeafFactory(issuer, ChainShape(san_count=20, leaf_keys=1)).leaf()
    assert len(big) > len(small) + 20 * 20
    cert = x509.load_der_x509_certificate(big)
    assert len(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value) == 20
    rsa_leaf = x509.load_der_x509_certificate(LeafFactory(issuer, ChainShape(leaf_key="rsa-2048", leaf_keys=1)).leaf())
    assert isinstance(rsa_leaf.public_key(), rsa.RSAPublicKey)
    rsa_leaf.verify_directly_issued_by(inter)


@pytest.mark.parametrize("shape", [ChainShape(leaf_key="dsa"), ChainShape(chain_length=4), ChainShape(san_count=0),
                                   ChainShape(leaf_keys=0)])
def test_chain_shape_rejects(shape):
    with pytest.raises(BadInput):
        shape.validate()


def test_chain_length_3_needs_root(pki):
    paths = pki[0]
    with pytest.raises(BadInput, match="root"):
        LeafFactory(Issuer.from_files(paths["intermediate"], paths["intermediate_key"]), ChainShape(chain_length=3))


def test_issuer_bad_files(tmp_path, pki):
    paths = pki[0]
    with pytest.raises(BadInput, match="cannot read"):
        Issuer.from_files(tmp_path / "missing.pem", paths["intermediate_key"])
    (tmp_path / "junk.pem").write_text("junk")
    with pytest.raises(BadInput, match="bad PKI file"):
        Issuer.from_files(paths["intermediate"], tmp_path / "junk.pem")


def test_cert_pool_delivers_everything_then_runs_dry(pki):
    paths = pki[0]
    pool = CertPool(Issuer.from_files(paths["intermediate"], paths["intermediate_key"]), ChainShape(), total=600, procs=2)
    try:
        pool.start()
        pool.fill(600, deadline_s=60)
        items = [pool.take() for _ in range(600)]
        assert all(items) and len({leaf for leaf, _ in items}) == 600
        assert pool.take() is None
    finally:
        pool.close()


# --- spec validation ----------------------------------------------------------------------------------

def spec(pki, **over) -> LoadSpec:
    paths = pki[0]
    base = dict(url="http://127.0.0.1:1/ct/v1/add-chain", log_public_key=paths["log_public_key"],
                intermediate=paths["intermediate"], intermediate_key=paths["intermediate_key"], rate=10,
                duration_s=1)
    return LoadSpec(**(base | over))


@pytest.mark.parametrize("over, match", [
    ({"rate": 0}, "rate"), ({"rate": -5}, "rate"), ({"rate": float("nan")}, "rate"), ({"rate": float("inf")}, "rate"),
    ({"rate": 1e9}, "rate"), ({"rate": "fast"}, "rate"), ({"duration_s": 0}, "duration"),
    ({"duration_s": 1e9}, "duration"), ({"rate": 0.1, "duration_s": 1}, "fewer than one"),
    ({"warmup_s": 1}, "warmup"), ({"warmup_s": -1}, "warmup"), ({"max_in_flight": 0}, "in flight"),
    ({"max_in_flight": 10 ** 7}, "in flight"), ({"max_in_flight": 2.5}, "in flight"), ({"url": "ftp://x/y"}, "url"),
    ({"url": "not a url"}, "url"), ({"timeout_s": 0}, "timeout"), ({"retries": -1}, "retries"),
    ({"retries": 100}, "retries"), ({"arrival": "bursty"}, "arrival"), ({"generator_procs": 0}, "generator"),
    ({"verify_procs": -1}, "verify"), ({"chain_length": 5}, "chain length"), ({"leaf_key": "ed25519"}, "leaf key"),
])
def test_spec_rejects_bad_input(pki, over, match):
    with pytest.raises(BadInput, match=match):
        spec(pki, **over).validate()


def test_spec_from_dict(pki):
    good = spec(pki)
    assert LoadSpec.from_dict({k: v for k, v in good.public().items() if k != "tree_size_probe"}) == good
    with pytest.raises(BadInput, match="unknown"):
        LoadSpec.from_dict({"rate": 1, "bogus": 2})
    with pytest.raises(BadInput, match="load spec"):
        LoadSpec.from_dict({"rate": 1})


def test_run_rejects_bad_files(pki, tmp_path):
    from scripts.loadgen import run
    (tmp_path / "junk").write_text("junk")
    with pytest.raises(BadInput, match="public key"):
        run(spec(pki, log_public_key=str(tmp_path / "junk")))
    with pytest.raises(BadInput, match="public key"):
        run(spec(pki, log_public_key=str(tmp_path / "missing")))
