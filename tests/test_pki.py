"""The generated PKI has the properties each upstream binary relies on."""
from __future__ import annotations

import datetime as dt
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from scripts import pki


@pytest.fixture(scope="module")
def the_pki(tmp_path_factory):
    return pki.generate(tmp_path_factory.mktemp("pki") / "p")


def _cert(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_ca_certificates_are_cas(the_pki):
    for path in (the_pki.root, the_pki.intermediate, the_pki.tesseract_hammer_dir / "intermediate.pem"):
        cert = _cert(path)
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    root, inter = _cert(the_pki.root), _cert(the_pki.intermediate)
    inter.verify_directly_issued_by(root)
    _cert(the_pki.tesseract_hammer_dir / "intermediate.pem").verify_directly_issued_by(root)


def test_certificates_are_fresh(the_pki):
    now = dt.datetime.now(dt.timezone.utc)
    for path in (the_pki.root, the_pki.intermediate):
        nb = _cert(path).not_valid_before_utc
        assert dt.timedelta(0) < now - nb < dt.timedelta(hours=1)


def test_ct_hammer_files(the_pki):
    chain = (the_pki.ct_hammer_dir / "leaf01.chain").read_bytes()
    certs = x509.load_pem_x509_certificates(chain)
    assert len(certs) == 2 and not certs[0].extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    certs[0].verify_directly_issued_by(certs[1])
    key_pem = (the_pki.ct_hammer_dir / "int-ca.privkey.pem").read_bytes()
    # Legacy PEM encryption of a SEC1 key, password "babelfish": what ct_hammer's MakeSigner decrypts.
    assert b"BEGIN EC PRIVATE KEY" in key_pem and b"Proc-Type: 4,ENCRYPTED" in key_pem and b"DEK-Info:" in key_pem
    key = serialization.load_pem_private_key(key_pem, password=b"babelfish")
    assert key.public_key() == _cert(the_pki.intermediate).public_key()


def test_ctfe_key_is_legacy_encrypted_with_generated_password(the_pki):
    pem = the_pki.trillian_key.read_bytes()
    assert b"Proc-Type: 4,ENCRYPTED" in pem and b"BEGIN ENCRYPTED PRIVATE KEY" not in pem
    password = the_pki.trillian_key_password.read_bytes()
    assert len(password) >= 16
    key = serialization.load_pem_private_key(pem, password=password)
    assert isinstance(key, ec.EllipticCurvePrivateKey)


def test_tesseract_key_is_sec1_p256_without_parameters(the_pki):
    pem = the_pki.tesseract_key.read_bytes()
    assert pem.startswith(b"-----BEGIN EC PRIVATE KEY-----") and b"EC PARAMETERS" not in pem
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key.curve, ec.SECP256R1)


def test_tesseract_hammer_keys_are_rsa(the_pki):
    for name in ("intermediate.key.pem", "leaf_signing.key.pem"):
        key = serialization.load_pem_private_key((the_pki.tesseract_hammer_dir / name).read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)


def test_private_files_are_owner_only(the_pki):
    assert stat.S_IMODE(the_pki.dir.stat().st_mode) == 0o700
    for path in (the_pki.root_key, the_pki.intermediate_key, the_pki.trillian_key, the_pki.trillian_key_password,
                 the_pki.tesseract_key, the_pki.ct_hammer_dir / "int-ca.privkey.pem"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_fresh_chains_are_unique_and_chain_to_the_root(the_pki):
    chains = pki.fresh_chains(the_pki, 3)
    leaves = {c[0] for c in chains}
    assert len(leaves) == 3
    for leaf_der, inter_der in chains:
        x509.load_der_x509_certificate(leaf_der).verify_directly_issued_by(x509.load_der_x509_certificate(inter_der))


def test_ensure_reuses_recent_and_regenerates_old(tmp_path):
    directory = tmp_path / "p"
    first, made = pki.ensure(directory)
    assert made
    _, made_again = pki.ensure(directory)
    assert not made_again
    later = dt.datetime.now(dt.timezone.utc) + pki.MAX_AGE + dt.timedelta(minutes=1)
    _, regenerated = pki.ensure(directory, now=later)
    assert regenerated
