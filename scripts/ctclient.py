"""Talking to a deployed log: verified tree heads and add-chain, for both APIs.

`TreeReader` reads the signed tree head — RFC 6962 get-sth (Trillian) or the static-ct-api signed
checkpoint (TesseraCT) — verifies its signature and checks it is consistent with the previous one it
read (never shrinks, same size means same root). A TesseraCT log that has integrated nothing yet has
an empty checkpoint file: that reads as size 0.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from scripts import ctverify
from scripts.ctverify import TreeHead
from scripts.errors import RunFailed

EMPTY = TreeHead(size=0, timestamp_ms=0, root_hash=b"")


class TreeReader:
    def __init__(self, system: str, info: dict[str, Any], *, timeout: float = 5.0,
                 session: requests.Session | None = None):
        self.system = system
        self.info = info
        self.timeout = timeout
        self.session = session or requests.Session()
        self.pubkey = ctverify.load_public_key(Path(info["public_key"]).read_bytes())
        self.last: TreeHead | None = None

    def read(self) -> TreeHead:
        if self.info["api"] == "rfc6962":
            resp = self.session.get(self.info["sth_url"], timeout=self.timeout)
            if resp.status_code != 200:
                raise RunFailed(f"{self.system}: get-sth answered HTTP {resp.status_code}")
            try:
                doc = resp.json()
            except ValueError:
                raise ctverify.VerifyError(f"{self.system}: get-sth body is not JSON") from None
            head = ctverify.verify_sth(doc, self.pubkey)
        else:
            resp = self.session.get(self.info["checkpoint_url"], timeout=self.timeout)
            if resp.status_code != 200:
                raise RunFailed(f"{self.system}: checkpoint answered HTTP {resp.status_code}")
            if not resp.content and self.last is None:
                head = EMPTY  # TesseraCT creates an empty checkpoint file before its first integration
            else:
                head = ctverify.verify_checkpoint(resp.content, self.info["origin"], self.pubkey)
        if self.last is not None and self.last is not EMPTY:
            ctverify.check_progress(self.last, head)
        self.last = head
        return head


@dataclass
class AddResult:
    status: int
    body: bytes
    sct: dict | None = None
    error: str = ""


def add_chain(session: requests.Session, url: str, chain_der: list[bytes], *, timeout: float = 30.0) -> AddResult:
    payload = {"chain": [base64.b64encode(c).decode() for c in chain_der]}
    resp = session.post(url, json=payload, timeout=timeout)
    result = AddResult(status=resp.status_code, body=resp.content)
    if resp.status_code == 200:
        try:
            result.sct = resp.json()
        except ValueError:
            result.error = "200 with a body that is not JSON"
    return result


def counter_value(text: str, metric: str, labels: dict[str, str]) -> float:
    """Sum of a Prometheus counter's samples whose labels include `labels` (structured, not grepped)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (metric, f"{metric}_total") and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def read_counter(spec: dict[str, Any], *, timeout: float = 3.0) -> float | None:
    """A server-side counter (e.g. CTFE's AddChain 200 responses: SCTs issued); None if unreadable."""
    try:
        resp = requests.get(spec["url"], timeout=timeout)
        resp.raise_for_status()
        return counter_value(resp.text, spec["metric"], spec["labels"])
    except (requests.RequestException, ValueError):
        return None
