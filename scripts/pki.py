"""The test PKI, generated with `cryptography` (never copied from upstream).

Layout under PKI_DIR (directory 0700, private keys 0600):

    root.pem / root.key.pem                 ECDSA P-256 root CA (CA:TRUE, keyCertSign)
    intermediate.pem / intermediate.key.pem ECDSA P-256 intermediate CA (pathlen 0), PKCS#8
    roots.pem                               the roots both logs accept
    ct_hammer/leaf01.chain                  leaf + intermediate, the template ct_hammer re-signs
    ct_hammer/int-ca.privkey.pem            intermediate key, SEC1 with legacy PEM encryption, password
                                            "babelfish" (hard-coded in ct_hammer's MakeSigner)
    tesseract_hammer/intermediate.pem/.key.pem, leaf_signing.key.pem
                                            RSA, as TesseraCT's hammer accepts only RSA
    logs/trillian.key.pem (+ .password)     CTFE signing key: EC, TraditionalOpenSSL + encryption with a
                                            generated password (PKCS#8 does not load in ct_server)
    logs/tesseract.key.pem                  TesseraCT signing key: SEC1 "EC PRIVATE KEY", no parameters
    logs/*.pub.pem                          the logs' public keys (SubjectPublicKeyInfo)

Certificates get a notBefore a few minutes in the past, so TesseraCT's old-notBefore rate limit
(when enabled) can never cap throughput silently.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from scripts import paths

HAMMER_PASSWORD = b"babelfish"   # ct_hammer's hard-coded password for int-ca.privkey.pem
MAX_AGE = dt.timedelta(hours=12)  # regenerate when the PKI is older than this
BACKDATE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Pki:
    dir: Path

    @property
    def root(self) -> Path: return self.dir / "root.pem"
    @property
    def root_key(self) -> Path: return self.dir / "root.key.pem"
    @property
    def intermediate(self) -> Path: return self.dir / "intermediate.pem"
    @property
    def intermediate_key(self) -> Path: return self.dir / "intermediate.key.pem"
    @property
    def roots(self) -> Path: return self.dir / "roots.pem"
    @property
    def ct_hammer_dir(self) -> Path: return self.dir / "ct_hammer"
    @property
    def tesseract_hammer_dir(self) -> Path: return self.dir / "tesseract_hammer"
    @property
    def trillian_key(self) -> Path: return self.dir / "logs" / "trillian.key.pem"
    @property
    def trillian_key_password(self) -> Path: return self.dir / "logs" / "trillian.key.password"
    @property
    def trillian_pub(self) -> Path: return self.dir / "logs" / "trillian.pub.pem"
    @property
    def tesseract_key(self) -> Path: return self.dir / "logs" / "tesseract.key.pem"
    @property
    def tesseract_pub(self) -> Path: return self.dir / "logs" / "tesseract.pub.pem"
    @property
    def meta(self) -> Path: return self.dir / "pki.json"


def layout(directory: Path | None = None) -> Pki:
    return Pki(Path(directory or paths.PKI_DIR))


# ----------------------------------------------------------------------------------- pure builders


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ct-bench test PKI"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca_cert(subject: str, key, issuer_name: x509.Name | None, issuer_key, now: dt.datetime,
             pathlen: int | None, days: int = 30) -> x509.Certificate:
    builder = (x509.CertificateBuilder()
               .subject_name(_name(subject))
               .issuer_name(issuer_name or _name(subject))
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - BACKDATE)
               .not_valid_after(now + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=True, path_length=pathlen), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=True, crl_sign=True,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    return builder.sign(issuer_key, hashes.SHA256())


def leaf_cert(issuer: x509.Certificate, issuer_key, *, now: dt.datetime | None = None, key=None,
              cn: str | None = None) -> x509.Certificate:
    """A fresh, unique TLS server leaf signed by `issuer`."""
    now = now or dt.datetime.now(dt.timezone.utc)
    key = key or ec.generate_private_key(ec.SECP256R1())
    cn = cn or f"{secrets.token_hex(8)}.leaf.ct-bench.test"
    return (x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(issuer.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + dt.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
            .sign(issuer_key, hashes.SHA256()))


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pkcs8(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _traditional(key, password: bytes | None = None) -> bytes:
    enc = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, enc)


def _spki(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


# ----------------------------------------------------------------------------------- files


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def generate(directory: Path | None = None, now: dt.datetime | None = None) -> Pki:
    """Write a complete, new PKI (replacing any previous one)."""
    pki = layout(directory)
    pki.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(pki.dir, 0o700)
    now = now or dt.datetime.now(dt.timezone.utc)

    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _ca_cert("ct-bench test root", root_key, None, root_key, now, pathlen=1)
    int_key = ec.generate_private_key(ec.SECP256R1())
    inter = _ca_cert("ct-bench test intermediate", int_key, root.subject, root_key, now, pathlen=0)
    _write(pki.root, _pem(root))
    _write(pki.root_key, _pkcs8(root_key), private=True)
    _write(pki.intermediate, _pem(inter))
    _write(pki.intermediate_key, _pkcs8(int_key), private=True)
    _write(pki.roots, _pem(root))

    # ct_hammer: a leaf template + the intermediate key it re-signs copies with.
    leaf = leaf_cert(inter, int_key, now=now, cn="leaf01.ct-bench.test")
    _write(pki.ct_hammer_dir / "leaf01.chain", _pem(leaf) + _pem(inter))
    _write(pki.ct_hammer_dir / "int-ca.privkey.pem", _traditional(int_key, HAMMER_PASSWORD), private=True)

    # TesseraCT's hammer: RSA only.
    rsa_int_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_inter = _ca_cert("ct-bench test RSA intermediate", rsa_int_key, root.subject, root_key, now, pathlen=0)
    _write(pki.tesseract_hammer_dir / "intermediate.pem", _pem(rsa_inter))
    _write(pki.tesseract_hammer_dir / "intermediate.key.pem", _pkcs8(rsa_int_key), private=True)
    leaf_signing = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write(pki.tesseract_hammer_dir / "leaf_signing.key.pem", _pkcs8(leaf_signing), private=True)

    # Log signing keys.
    password = secrets.token_urlsafe(18)
    trillian_key = ec.generate_private_key(ec.SECP256R1())
    _write(pki.trillian_key, _traditional(trillian_key, password.encode()), private=True)
    _write(pki.trillian_key_password, password.encode(), private=True)
    _write(pki.trillian_pub, _spki(trillian_key))
    tesseract_key = ec.generate_private_key(ec.SECP256R1())
    _write(pki.tesseract_key, _traditional(tesseract_key), private=True)
    _write(pki.tesseract_pub, _spki(tesseract_key))

    _write(pki.meta, json.dumps({"generated_at": now.isoformat(timespec="seconds"),
                                 "root_sha256": root.fingerprint(hashes.SHA256()).hex()}).encode())
    return pki


def generated_at(pki: Pki) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(json.loads(pki.meta.read_text())["generated_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def complete(pki: Pki) -> bool:
    files = [pki.root, pki.intermediate, pki.intermediate_key, pki.roots, pki.trillian_key,
             pki.trillian_key_password, pki.trillian_pub, pki.tesseract_key, pki.tesseract_pub,
             pki.ct_hammer_dir / "leaf01.chain", pki.ct_hammer_dir / "int-ca.privkey.pem",
             pki.tesseract_hammer_dir / "intermediate.pem", pki.tesseract_hammer_dir / "intermediate.key.pem",
             pki.tesseract_hammer_dir / "leaf_signing.key.pem"]
    return all(f.exists() for f in files)


def ensure(directory: Path | None = None, *, now: dt.datetime | None = None) -> tuple[Pki, bool]:
    """Reuse a complete, recent PKI; otherwise generate one. Returns (pki, regenerated)."""
    pki = layout(directory)
    now = now or dt.datetime.now(dt.timezone.utc)
    made = generated_at(pki)
    if complete(pki) and made is not None and dt.timedelta(0) <= now - made < MAX_AGE:
        return pki, False
    return generate(directory, now), True


# ----------------------------------------------------------------------------------- use


def load_intermediate(pki: Pki):
    inter = x509.load_pem_x509_certificate(pki.intermediate.read_bytes())
    key = serialization.load_pem_private_key(pki.intermediate_key.read_bytes(), password=None)
    return inter, key


def fresh_chains(pki: Pki, count: int) -> list[list[bytes]]:
    """`count` unique chains [leaf, intermediate] as DER, for smoke tests."""
    inter, key = load_intermediate(pki)
    inter_der = inter.public_bytes(serialization.Encoding.DER)
    return [[leaf_cert(inter, key).public_bytes(serialization.Encoding.DER), inter_der] for _ in range(count)]


def public_key_der(pub_pem: Path) -> bytes:
    key = serialization.load_pem_public_key(pub_pem.read_bytes())
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
