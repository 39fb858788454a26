"""Every add-chain outcome gets exactly one class; only OK (a verified SCT) counts as accepted."""
from __future__ import annotations

import json
from typing import NamedTuple

from scripts import ctverify

OK = "ok"                    # HTTP 200 with an SCT whose signature verifies for this leaf
PUSHBACK = "pushback"        # 429 or 503, or another 5xx whose body says pushback
CLIENT_ERROR = "client_error"  # any other 4xx
SERVER_ERROR = "server_error"  # any other 5xx, and unexpected statuses (1xx/2xx other than 200/3xx)
TIMEOUT = "timeout"          # no complete answer within the request timeout
TRANSPORT_ERROR = "transport_error"  # connection refused/reset, not HTTP: no status at all
BAD_SCT = "bad_sct"          # HTTP 200 whose body is not an SCT that verifies

CLASSES = (OK, PUSHBACK, CLIENT_ERROR, SERVER_ERROR, TIMEOUT, TRANSPORT_ERROR, BAD_SCT)
ERRORS = tuple(c for c in CLASSES if c != OK)
RETRYABLE = (PUSHBACK, TIMEOUT, TRANSPORT_ERROR)


def classify_status(status: int, body: bytes) -> str | None:
    """Class of a non-200 answer; None for 200, whose SCT still has to be verified."""
    if status == 200:
        return None
    if status in (429, 503):
        return PUSHBACK
    if 400 <= status < 500:
        return CLIENT_ERROR
    if 500 <= status < 600:
        return PUSHBACK if b"pushback" in body.lower() else SERVER_ERROR
    return SERVER_ERROR


class Verdict(NamedTuple):
    reason: str | None        # None: OK; otherwise a one-line bad_sct reason
    timestamp_ms: int | None
    leaf_index: int | None    # static-ct-api leaf_index SCT extension, when present


def verify_body(body: bytes, chain_der: list[bytes], pubkey, log_id: bytes) -> Verdict:
    try:
        sct = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return Verdict("response body is not JSON", None, None)
    try:
        ts = ctverify.verify_sct(sct, chain_der, pubkey, expected_log_id=log_id)
    except ctverify.VerifyError as exc:
        return Verdict(str(exc), None, None)
    return Verdict(None, ts, ctverify.sct_leaf_index(sct))


# --- a verifier that lives in a helper process (state set once by the pool initializer) ------------

_STATE: dict = {}


def init_verifier(pubkey_der: bytes, tail_der: list[bytes]) -> None:
    key = ctverify.load_public_key(pubkey_der)
    _STATE.update(key=key, log_id=ctverify.log_id(key), tail=list(tail_der))


def verify_batch(items: list[tuple[bytes, bytes]]) -> list[Verdict]:
    """items: (response body, leaf DER); needs init_verifier() first in this process."""
    key, lid, tail = _STATE["key"], _STATE["log_id"], _STATE["tail"]
    return [verify_body(body, [leaf, *tail], key, lid) for body, leaf in items]
