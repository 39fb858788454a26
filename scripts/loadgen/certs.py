"""Unique, fresh leaf certificates signed by the test intermediate, fast enough to never throttle sending.

A leaf is built once with `cryptography` as a template; every further leaf is that TBSCertificate
with a new random 16-byte serial number (and, per template, a new subject/SAN label), signed by the
intermediate key and wrapped in DER by hand. Signing is the only real cost (~30 µs for ECDSA P-256),
so one helper process makes well over 10,000 leaves per second. Templates are rebuilt every
`TEMPLATE_MAX_AGE_S` so notBefore stays a few minutes in the past for long runs.

`CertPool` runs `generator_procs` such processes and hands out ready add-chain bodies.
"""
from __future__ import annotations

import base64
import collections
import datetime as dt
import multiprocessing as mp
import os
import queue
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from scripts.errors import BadInput, RunFailed

LEAF_KEY_TYPES = ("ec-p256", "ec-p384", "rsa-2048")
BACKDATE = dt.timedelta(minutes=5)
LEAF_LIFETIME = dt.timedelta(days=7)
TEMPLATE_MAX_AGE_S = 60.0
SERIAL_LEN = 16
SERIAL_MARKER = bytes([0x5A]) * SERIAL_LEN  # positive, fixed-length: replaced byte-for-byte
BATCH = 256


@dataclass(frozen=True)
class ChainShape:
    """What every submitted chain looks like; identical for every log under test."""

    leaf_key: str = "ec-p256"      # key type of the leaf certificates
    chain_length: int = 2          # 2: [leaf, intermediate]; 3: [leaf, intermediate, root]
    san_count: int = 1             # DNS names per leaf: the knob for certificate size
    leaf_keys: int = 16            # distinct leaf key pairs, reused across (unique) certificates

    def validate(self) -> None:
        if self.leaf_key not in LEAF_KEY_TYPES:
            raise BadInput(f"leaf key type {self.leaf_key!r}: choose one of {', '.join(LEAF_KEY_TYPES)}")
        if self.chain_length not in (2, 3):
            raise BadInput(f"chain length {self.chain_length}: 2 (leaf, intermediate) or 3 (+ root)")
        if not 1 <= self.san_count <= 1000:
            raise BadInput(f"SAN count {self.san_count}: between 1 and 1000")
        if not 1 <= self.leaf_keys <= 10_000:
            raise BadInput(f"leaf key count {self.leaf_keys}: between 1 and 10000")


@dataclass(frozen=True)
class Issuer:
    """The intermediate (and optionally the root) that leaves chain to, as raw bytes (picklable)."""

    intermediate_der: bytes
    intermediate_key_pem: bytes
    root_der: bytes | None = None

    @classmethod
    def from_files(cls, intermediate: Path, intermediate_key: Path, root: Path | None = None) -> "Issuer":
        try:
            inter = x509.load_pem_x509_certificate(Path(intermediate).read_bytes())
            key_pem = Path(intermediate_key).read_bytes()
            serialization.load_pem_private_key(key_pem, password=None)
            root_der = None
            if root is not None:
                root_der = x509.load_pem_x509_certificate(Path(root).read_bytes()).public_bytes(
                    serialization.Encoding.DER)
        except OSError as exc:
            raise BadInput(f"cannot read PKI file: {exc}") from None
        except (ValueError, TypeError) as exc:
            raise BadInput(f"bad PKI file (want PEM certificate / unencrypted PEM key): {exc}") from None
        return cls(inter.public_bytes(serialization.Encoding.DER), key_pem, root_der)


# --- DER plumbing -----------------------------------------------------------------------------------


def der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def der_header_len(data: bytes, offset: int = 0) -> tuple[int, int]:
    """(header length, content length) of the TLV at offset."""
    first = data[offset + 1]
    if first < 0x80:
        return 2, first
    n = first & 0x7F
    return 2 + n, int.from_bytes(data[offset + 2: offset + 2 + n], "big")


def _sig_alg_der(cert_der: bytes) -> bytes:
    """The signatureAlgorithm AlgorithmIdentifier that follows the TBSCertificate in a certificate."""
    outer_hdr, _ = der_header_len(cert_der, 0)
    tbs_hdr, tbs_len = der_header_len(cert_der, outer_hdr)
    alg_off = outer_hdr + tbs_hdr + tbs_len
    alg_hdr, alg_len = der_header_len(cert_der, alg_off)
    return cert_der[alg_off: alg_off + alg_hdr + alg_len]


def _new_leaf_key(kind: str):
    if kind == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# --- the factory (runs inside a helper process, or inline in tests) ---------------------------------


@dataclass
class _Template:
    prefix: bytes
    suffix: bytes
    built: float


@dataclass
class LeafFactory:
    issuer: Issuer
    shape: ChainShape = field(default_factory=ChainShape)

    def __post_init__(self) -> None:
        self.shape.validate()
        self._inter = x509.load_der_x509_certificate(self.issuer.intermediate_der)
        self._inter_key = serialization.load_pem_private_key(self.issuer.intermediate_key_pem, password=None)
        if isinstance(self._inter_key, ec.EllipticCurvePrivateKey):
            self._sign = lambda tbs: self._inter_key.sign(tbs, ec.ECDSA(hashes.SHA256()))
        elif isinstance(self._inter_key, rsa.RSAPrivateKey):
            self._sign = lambda tbs: self._inter_key.sign(tbs, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise BadInput(f"intermediate key type {type(self._inter_key).__name__} not supported")
        self._keys = [_new_leaf_key(self.shape.leaf_key) for _ in range(self.shape.leaf_keys)]
        self._templates: list[_Template | None] = [None] * len(self._keys)
        self._next = 0
        self._sig_alg: bytes | None = None
        tail = [self.issuer.intermediate_der]
        if self.shape.chain_length == 3:
            if self.issuer.root_der is None:
                raise BadInput("chain length 3 needs the root certificate")
            tail.append(self.issuer.root_der)
        self._tail_der = tail
        self._body_tail = b"".join(b'","' + base64.b64encode(c) for c in tail) + b'"]}'

    @property
    def tail_der(self) -> list[bytes]:
        """The chain after the leaf: what every submission carries."""
        return list(self._tail_der)

    def _template(self, index: int, now: float) -> _Template:
        tpl = self._templates[index]
        if tpl is not None and now - tpl.built < TEMPLATE_MAX_AGE_S:
            return tpl
        when = dt.datetime.fromtimestamp(now, dt.timezone.utc)
        label = secrets.token_hex(6)
        names = [f"{label}-{i}.leaf.ct-bench.test" for i in range(self.shape.san_count)]
        not_after = min(when + LEAF_LIFETIME, self._inter.not_valid_after_utc)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ct-bench load"),
                                         x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
                .issuer_name(self._inter.subject)
                .public_key(self._keys[index].public_key())
                .serial_number(int.from_bytes(SERIAL_MARKER, "big"))
                .not_valid_before(when - BACKDATE)
                .not_valid_after(not_after)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
                .sign(self._inter_key, hashes.SHA256()))
        tbs = cert.tbs_certificate_bytes
        marker = bytes([0x02, SERIAL_LEN]) + SERIAL_MARKER
        at = tbs.find(marker)
        if at < 0 or tbs.find(marker, at + 1) >= 0:
            raise RunFailed("leaf template: serial number marker not found exactly once")
        if self._sig_alg is None:
            self._sig_alg = _sig_alg_der(cert.public_bytes(serialization.Encoding.DER))
        tpl = _Template(tbs[: at + 2], tbs[at + 2 + SERIAL_LEN:], now)
        self._templates[index] = tpl
        return tpl

    def leaf(self, now: float | None = None) -> bytes:
        """One new leaf certificate (DER), unique by its random serial number."""
        index = self._next
        self._next = (index + 1) % len(self._keys)
        tpl = self._template(index, time.time() if now is None else now)
        serial = bytearray(secrets.token_bytes(SERIAL_LEN))
        serial[0] = (serial[0] & 0x7F) | 0x01  # positive, and no leading zero byte: length stays 16
        tbs = tpl.prefix + bytes(serial) + tpl.suffix
        sig = self._sign(tbs)
        bits = b"\x03" + der_length(len(sig) + 1) + b"\x00" + sig
        content = tbs + self._sig_alg + bits
        return b"\x30" + der_length(len(content)) + content

    def item(self, now: float | None = None) -> tuple[bytes, bytes]:
        """(leaf DER, add-chain JSON body) for one submission."""
        leaf = self.leaf(now)
        return leaf, b'{"chain":["' + base64.b64encode(leaf) + self._body_tail


def _generator_main(issuer: Issuer, shape: ChainShape, count: int, out: "mp.Queue", stop: "mp.Event") -> None:
    try:
        factory = LeafFactory(issuer, shape)
        made = 0
        while made < count and not stop.is_set():
            n = min(BATCH, count - made)
            now = time.time()
            batch = [factory.item(now) for _ in range(n)]
            while not stop.is_set():
                try:
                    out.put(batch, timeout=0.2)
                    break
                except queue.Full:
                    continue
            made += n
    except Exception as exc:  # reported to the parent, which fails the run with this line
        out.put(f"certificate generator failed: {type(exc).__name__}: {exc}")


class CertPool:
    """Helper processes fill a bounded queue with (leaf DER, body) batches; a feeder thread moves them
    into a local deque, so `take()` never blocks the event loop (reading a batch off the pipe can)."""

    def __init__(self, issuer: Issuer, shape: ChainShape, total: int, procs: int = 1, ahead: int = 20_000):
        shape.validate()
        if procs < 1:
            raise BadInput(f"generator processes {procs}: need at least 1")
        self.total = total
        self.ahead = ahead
        ctx = mp.get_context("spawn")
        self._queue: mp.Queue = ctx.Queue(maxsize=max(2, ahead // BATCH))
        self._stop = ctx.Event()
        share = [total // procs + (1 if i < total % procs else 0) for i in range(procs)]
        self._procs = [ctx.Process(target=_generator_main, args=(issuer, shape, n, self._queue, self._stop),
                                   name=f"loadgen-certs-{i}", daemon=True)
                       for i, n in enumerate(share) if n > 0]
        self._items: collections.deque[tuple[bytes, bytes]] = collections.deque()
        self._feeder = threading.Thread(target=self._feed, name="loadgen-cert-feeder", daemon=True)
        self._closing = threading.Event()
        self.received = 0
        self.error: str | None = None

    def start(self) -> None:
        for p in self._procs:
            p.start()
        self._feeder.start()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

    def _feed(self) -> None:
        while not self._closing.is_set() and self.received < self.total:
            if len(self._items) >= self.ahead:
                time.sleep(0.01)  # far enough ahead; let the generators' queue absorb the rest
                continue
            try:
                got = self._queue.get(timeout=0.1)
            except queue.Empty:
                if not any(p.is_alive() for p in self._procs) and self._queue.empty():
                    if self.received < self.total and self.error is None:
                        self.error = "certificate generator exited early"
                    return
                continue
            except (OSError, ValueError, EOFError):
                return
            if isinstance(got, str):
                self.error = got
                return
            self._items.extend(got)
            self.received += len(got)

    def fill(self, want: int, deadline_s: float) -> None:
        """Block until `want` items are ready (or everything was made), within a deadline."""
        want = min(want, self.total)
        end = time.monotonic() + deadline_s
        while len(self._items) < want:
            if self.error:
                raise RunFailed(self.error)
            if time.monotonic() > end:
                raise RunFailed(f"certificate pool: {len(self._items)} of {want} leaves ready after {deadline_s:.0f}s")
            time.sleep(0.02)

    def take(self) -> tuple[bytes, bytes] | None:
        try:
            return self._items.popleft()
        except IndexError:
            return None

    def close(self) -> None:
        self._closing.set()
        self._stop.set()
        if self._feeder.is_alive():
            self._feeder.join(timeout=2)
        # Drain so children blocked on put() can exit.
        try:
            while True:
                self._queue.get_nowait()
        except (queue.Empty, OSError, ValueError, EOFError):
            pass
        for p in self._procs:
            if p.pid is None:
                continue  # never started
            p.join(timeout=2)
            if p.is_alive():
                p.terminate()
                p.join(timeout=2)
        self._queue.close()
        self._queue.cancel_join_thread()


def cpu_count_available() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1
