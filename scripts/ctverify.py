"""Verify what a CT log signs: SCTs, RFC 6962 STHs and static-ct-api checkpoints. No network.

Formats, read from the pinned upstream sources:
- SCT and STH signed data: RFC 6962 §3.2 and §3.5 (TLS encoding, DigitallySigned with SHA-256).
  Only x509_entry SCTs are checked; precertificate chains are refused with a clear error.
- Checkpoint: C2SP signed-note wrapping a C2SP tlog-checkpoint body. static-ct-api signs it with an
  "RFC6962NoteSignature": key hash = first 4 bytes of SHA-256(origin || 0x0A || 0x05 || log_id) where
  log_id = SHA-256(DER SPKI) (tesseract internal/ct/signatures.go NewCpSigner, formats
  note/note_rfc6962.go rfc6962Keyhash); signature bytes = key hash || uint64 timestamp ||
  DigitallySigned over the RFC 6962 TreeHeadSignature for (timestamp, size, root).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from scripts.errors import RunFailed

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

# RFC 5246 §7.4.1.4.1 codes.
HASH_SHA256 = 4
SIG_RSA = 1
SIG_ECDSA = 3

SCT_V1 = 0
SIG_TYPE_CERTIFICATE_TIMESTAMP = 0
SIG_TYPE_TREE_HASH = 1
ENTRY_X509 = 0

NOTE_ALG_RFC6962_STH = 0x05
NOTE_SIG_PREFIX = "\u2014 "  # em dash + space, as in golang.org/x/mod/sumdb/note
MAX_NOTE_SIGNATURES = 100

# DER of the RFC 6962 §3.1 precertificate poison OID 1.3.6.1.4.1.11129.2.4.3.
POISON_OID_DER = bytes.fromhex("060a2b06010401d679020403")


class VerifyError(RunFailed):
    """A signature, log id, format or consistency check failed (one-line reason)."""


@dataclass(frozen=True)
class TreeHead:
    size: int
    timestamp_ms: int
    root_hash: bytes


# --- keys -------------------------------------------------------------------------------------------


def load_public_key(data: bytes) -> PublicKey:
    """A PEM or DER SubjectPublicKeyInfo (ECDSA P-256 or RSA). Base64 DER text is accepted too."""
    if isinstance(data, str):
        data = data.encode()
    stripped = data.strip()
    try:
        if stripped.startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(stripped)
        else:
            try:
                key = serialization.load_der_public_key(data)
            except ValueError:
                key = serialization.load_der_public_key(base64.b64decode(stripped, validate=True))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise VerifyError(f"not a PEM or DER public key: {exc}") from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise VerifyError(f"unsupported EC curve {key.curve.name}: CT logs use P-256")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        return key
    raise VerifyError(f"unsupported public key type {type(key).__name__}")


def spki_der(pubkey: PublicKey) -> bytes:
    return pubkey.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def log_id(pubkey: PublicKey) -> bytes:
    """RFC 6962 §3.2 LogID: SHA-256 of the DER SubjectPublicKeyInfo."""
    return hashlib.sha256(spki_der(pubkey)).digest()


def checkpoint_key_hash(origin: str, pubkey: PublicKey) -> bytes:
    """The 4-byte key hash that names this key in a static-ct-api checkpoint signature line."""
    return hashlib.sha256(origin.encode() + b"\x0a" + bytes([NOTE_ALG_RFC6962_STH]) + log_id(pubkey)).digest()[:4]


# --- helpers ----------------------------------------------------------------------------------------


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise VerifyError(f"{what}: expected a base64 string, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise VerifyError(f"{what}: invalid base64") from None


def _uint(value: Any, what: str, bits: int = 64) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < (1 << bits):
        raise VerifyError(f"{what}: expected an unsigned {bits}-bit integer, got {value!r}")
    return value


def _field(doc: Any, name: str, what: str) -> Any:
    if not isinstance(doc, dict):
        raise VerifyError(f"{what}: expected a JSON object, got {type(doc).__name__}")
    if name not in doc:
        raise VerifyError(f"{what}: missing field {name!r}")
    return doc[name]


def _check_digitally_signed(blob: bytes, signed: bytes, pubkey: PublicKey, what: str) -> None:
    """Verify a TLS DigitallySigned struct (exactly, no trailing bytes) over `signed`."""
    if len(blob) < 4:
        raise VerifyError(f"{what}: DigitallySigned too short ({len(blob)} bytes)")
    hash_alg, sig_alg, length = blob[0], blob[1], struct.unpack(">H", blob[2:4])[0]
    signature = blob[4:]
    if len(signature) != length:
        raise VerifyError(f"{what}: DigitallySigned length {length} but {len(signature)} signature bytes")
    if hash_alg != HASH_SHA256:
        raise VerifyError(f"{what}: hash algorithm {hash_alg}, want SHA-256 ({HASH_SHA256})")
    try:
        if isinstance(pubkey, ec.EllipticCurvePublicKey):
            if sig_alg != SIG_ECDSA:
                raise VerifyError(f"{what}: signature algorithm {sig_alg}, want ECDSA ({SIG_ECDSA})")
            pubkey.verify(signature, signed, ec.ECDSA(hashes.SHA256()))
        elif isinstance(pubkey, rsa.RSAPublicKey):
            if sig_alg != SIG_RSA:
                raise VerifyError(f"{what}: signature algorithm {sig_alg}, want RSA ({SIG_RSA})")
            pubkey.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise VerifyError(f"{what}: unsupported key type {type(pubkey).__name__}")
    except InvalidSignature:
        raise VerifyError(f"{what}: signature does not verify with the log's key") from None


def _tree_head_signed_data(timestamp_ms: int, size: int, root_hash: bytes) -> bytes:
    # RFC 6962 §3.5 TreeHeadSignature: version, signature_type, timestamp, tree_size, sha256_root_hash.
    return struct.pack(">BBQQ", SCT_V1, SIG_TYPE_TREE_HASH, timestamp_ms, size) + root_hash


# --- SCT --------------------------------------------------------------------------------------------


def sct_signed_data(sct_version: int, timestamp_ms: int, extensions: bytes, chain_der: list[bytes]) -> bytes:
    """RFC 6962 §3.2 digitally-signed input of an SCT for the x509 entry chain_der[0]."""
    if not chain_der:
        raise VerifyError("SCT: empty chain")
    leaf = chain_der[0]
    if POISON_OID_DER in leaf:
        # Precert entries need the TBSCertificate re-encoded without the poison; not needed here.
        raise VerifyError("SCT: precertificate entries are not supported")
    head = struct.pack(">BBQH", sct_version, SIG_TYPE_CERTIFICATE_TIMESTAMP, timestamp_ms, ENTRY_X509)
    return head + len(leaf).to_bytes(3, "big") + leaf + struct.pack(">H", len(extensions)) + extensions


def verify_sct(sct: dict, chain_der: list[bytes], pubkey: PublicKey, *, expected_log_id: bytes | None = None) -> int:
    """Check an add-chain response's SCT for chain_der[0]; return its timestamp (ms).

    expected_log_id: log_id(pubkey), precomputed by callers that verify many SCTs.
    """
    version = _uint(_field(sct, "sct_version", "SCT"), "SCT sct_version", 8)
    if version != SCT_V1:
        raise VerifyError(f"SCT: sct_version {version}, want v1 (0)")
    sct_id = _b64(_field(sct, "id", "SCT"), "SCT id")
    want_id = expected_log_id or log_id(pubkey)
    if sct_id != want_id:
        raise VerifyError(f"SCT: log id {sct_id.hex()[:16]}… is not this log's ({want_id.hex()[:16]}…)")
    timestamp = _uint(_field(sct, "timestamp", "SCT"), "SCT timestamp")
    extensions = _b64(sct.get("extensions", ""), "SCT extensions")
    if len(extensions) > 0xFFFF:
        raise VerifyError("SCT: extensions longer than 65535 bytes")
    signature = _b64(_field(sct, "signature", "SCT"), "SCT signature")
    signed = sct_signed_data(version, timestamp, extensions, chain_der)
    _check_digitally_signed(signature, signed, pubkey, "SCT")
    return timestamp


def sct_leaf_index(sct: dict) -> int | None:
    """The static-ct-api leaf_index SCT extension (type 0, uint40), or None if absent/other."""
    try:
        ext = base64.b64decode(sct.get("extensions", "") or "", validate=True)
    except (binascii.Error, ValueError, AttributeError, TypeError):
        return None
    if len(ext) != 1 + 2 + 5 or ext[0] != 0 or ext[1:3] != b"\x00\x05":
        return None
    return int.from_bytes(ext[3:8], "big")


# --- STH --------------------------------------------------------------------------------------------


def verify_sth(sth: dict, pubkey: PublicKey) -> TreeHead:
    """Check a get-sth response's signature; return the tree head it signs."""
    size = _uint(_field(sth, "tree_size", "STH"), "STH tree_size")
    timestamp = _uint(_field(sth, "timestamp", "STH"), "STH timestamp")
    root = _b64(_field(sth, "sha256_root_hash", "STH"), "STH sha256_root_hash")
    if len(root) != 32:
        raise VerifyError(f"STH: root hash is {len(root)} bytes, want 32")
    signature = _b64(_field(sth, "tree_head_signature", "STH"), "STH tree_head_signature")
    _check_digitally_signed(signature, _tree_head_signed_data(timestamp, size, root), pubkey, "STH")
    return TreeHead(size=size, timestamp_ms=timestamp, root_hash=root)


# --- checkpoint -------------------------------------------------------------------------------------


def _split_note(note: bytes) -> tuple[str, list[str]]:
    """C2SP signed-note: text (ends with newline), a blank line, then signature lines."""
    try:
        text_all = note.decode("utf-8")
    except UnicodeDecodeError:
        raise VerifyError("checkpoint: not valid UTF-8") from None
    if any(ord(ch) < 0x20 and ch != "\n" for ch in text_all):
        raise VerifyError("checkpoint: control characters in note")
    split = text_all.rfind("\n\n")
    if split < 0:
        raise VerifyError("checkpoint: no signature block (blank line) in note")
    text, sigs = text_all[: split + 1], text_all[split + 2:]
    if not sigs or not sigs.endswith("\n"):
        raise VerifyError("checkpoint: signature block must be non-empty and end with a newline")
    lines = sigs[:-1].split("\n")
    if len(lines) > MAX_NOTE_SIGNATURES:
        raise VerifyError(f"checkpoint: more than {MAX_NOTE_SIGNATURES} signatures")
    return text, lines


def _parse_checkpoint_body(text: str) -> tuple[str, int, bytes]:
    lines = text.split("\n")
    # origin, size, root hash, then "" after the final newline. Extension lines cannot be covered by
    # an RFC 6962 tree head signature, so static-ct-api checkpoints must not have any.
    if len(lines) < 4:
        raise VerifyError("checkpoint: body needs origin, size and root hash lines")
    if len(lines) > 4:
        raise VerifyError("checkpoint: extension lines are not allowed in a static-ct-api checkpoint")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not (size_text.isascii() and size_text.isdigit()) or (len(size_text) > 1 and size_text[0] == "0"):
        raise VerifyError(f"checkpoint: bad tree size line {size_text[:40]!r}")
    size = int(size_text)
    if size >= 1 << 64:
        raise VerifyError("checkpoint: tree size does not fit 64 bits")
    root = _b64(root_text, "checkpoint root hash")
    if len(root) != 32:
        raise VerifyError(f"checkpoint: root hash is {len(root)} bytes, want 32")
    return origin, size, root


def verify_checkpoint(note: bytes, origin: str, pubkey: PublicKey) -> TreeHead:
    """Check a static-ct-api signed checkpoint from the log with this origin and key."""
    if isinstance(note, str):
        note = note.encode()
    text, sig_lines = _split_note(note)
    body_origin, size, root = _parse_checkpoint_body(text)
    if body_origin != origin:
        raise VerifyError(f"checkpoint: origin {body_origin[:80]!r}, want {origin!r}")
    want_hash = checkpoint_key_hash(origin, pubkey)
    verified: TreeHead | None = None
    for line in sig_lines:
        if not line.startswith(NOTE_SIG_PREFIX):
            raise VerifyError("checkpoint: malformed signature line")
        name, _, b64 = line[len(NOTE_SIG_PREFIX):].partition(" ")
        raw = _b64(b64, "checkpoint signature")
        if not name or "+" in name or len(raw) < 5:
            raise VerifyError("checkpoint: malformed signature line")
        if name != origin or raw[:4] != want_hash:
            continue  # someone else's (co)signature: allowed, but never enough on its own
        if len(raw) < 4 + 8 + 4:
            raise VerifyError("checkpoint: log signature too short")
        timestamp = struct.unpack(">Q", raw[4:12])[0]
        _check_digitally_signed(raw[12:], _tree_head_signed_data(timestamp, size, root), pubkey, "checkpoint")
        if verified is None:
            verified = TreeHead(size=size, timestamp_ms=timestamp, root_hash=root)
    if verified is None:
        raise VerifyError(f"checkpoint: no signature by {origin!r} with this log's key")
    return verified


# --- consistency ------------------------------------------------------------------------------------


def check_progress(prev: TreeHead | None, cur: TreeHead) -> None:
    """A log's tree never shrinks, and one size has one root."""
    if prev is None:
        return
    if cur.size < prev.size:
        raise VerifyError(f"tree shrank from {prev.size} to {cur.size}")
    if cur.size == prev.size and cur.root_hash != prev.root_hash:
        raise VerifyError(f"two different roots for tree size {cur.size}")
