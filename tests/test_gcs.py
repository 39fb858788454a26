"""GCS JSON API parsing on recorded responses, and TesseraCT's tree size read from its checkpoint."""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from scripts import ctverify, gcs, gke
from scripts import gke_spec as spec
from scripts.errors import BadInput, RunFailed

DATA = Path(__file__).parent / "data" / "gke"
ORIGIN = "tesseract.ctbench.svc/bench"


def load(name: str) -> dict:
    return json.loads((DATA / name).read_text())


class FakeResponse:
    def __init__(self, status: int = 200, doc=None, content: bytes = b""):
        self.status_code = status
        self._doc = doc
        self.content = content if doc is None else json.dumps(doc).encode()
        self.text = self.content.decode("utf-8", "replace")

    def json(self):
        return self._doc


class FakeSession:
    def __init__(self, *responses: FakeResponse):
        self.responses = list(responses)
        self.calls: list[tuple[str, str]] = []

    def get(self, url, timeout):
        self.calls.append(("GET", url))
        return self.responses.pop(0)

    def post(self, url, data, headers, timeout):
        self.calls.append(("POST", url))
        return self.responses.pop(0)


def test_object_metadata_int64_fields_are_strings_in_the_api():
    meta = gcs.parse_object(load("gcs_object_checkpoint.json"))
    assert meta["name"] == "checkpoint"
    assert meta["size"] == len((DATA / "gcs_checkpoint.bin").read_bytes())
    assert meta["generation"] == 1796364901150000
    assert meta["updated"].isoformat() == "2026-12-04T06:15:01.150000+00:00"


def test_list_follows_pages_and_sorts():
    session = FakeSession(FakeResponse(doc=load("gcs_list_page1.json")), FakeResponse(doc=load("gcs_list_page2.json")))
    items = gcs.list_objects(session, "ctbench-offline-ctb-small-results", "runs/20261204T060000-ab12/trillian/")
    assert [i["name"].rsplit("/", 1)[-1] for i in items] == ["0.json", "1.json", "2.json"]
    first, second = (urlparse(url) for _, url in session.calls)
    assert parse_qs(first.query)["prefix"] == ["runs/20261204T060000-ab12/trillian/"]
    assert "pageToken" in parse_qs(second.query)


def test_an_empty_prefix_has_no_items_key():
    assert gcs.parse_list(load("gcs_list_empty.json")) == ([], None)
    with pytest.raises(RunFailed, match="storage#objects"):
        gcs.parse_list({"items": []})


def test_errors_are_one_line_with_the_status():
    session = FakeSession(FakeResponse(403, doc=load("gcs_error_403.json")))
    with pytest.raises(RunFailed, match=r"HTTP 403 .*storage\.objects\.get"):
        gcs.read_object(session, "b", "checkpoint")


def test_urls_escape_object_names():
    assert gcs.media_url("b", "runs/r1/x.json") == "https://storage.googleapis.com/storage/v1/b/b/o/runs%2Fr1%2Fx.json?alt=media"
    assert gcs.upload_url("b", "a b").endswith("uploadType=media&name=a%20b")
    assert gcs.parse_gs_url("gs://bucket/runs/1.json") == ("bucket", "runs/1.json")
    for bad in ("bucket/x", "gs://bucket", "gs://bucket/"):
        with pytest.raises(BadInput):
            gcs.parse_gs_url(bad)


def test_upload_parses_the_created_object():
    session = FakeSession(FakeResponse(doc=load("gcs_list_page2.json")["items"][0]))
    meta = gcs.upload(session, "ctbench-offline-ctb-small-results", "runs/20261204T060000-ab12/trillian/2.json", b"{}")
    assert session.calls[0][0] == "POST" and meta["size"] == 4323


def test_recorded_checkpoint_verifies_and_gives_the_tree_size():
    note = (DATA / "gcs_checkpoint.bin").read_bytes()
    key = ctverify.load_public_key((DATA / "tesseract_pub.pem").read_bytes())
    head = ctverify.verify_checkpoint(note, ORIGIN, key)
    assert head.size == 1048611
    tampered = note.replace(b"1048611", b"1048612")
    with pytest.raises(RunFailed):
        ctverify.verify_checkpoint(tampered, ORIGIN, key)


def test_read_tree_for_tesseract_goes_through_the_json_api(tmp_path):
    """gke.read_tree (not a dry run) with a fake authorized session answering the recorded checkpoint."""
    from scripts import costs
    price_book = costs.load_costs()
    o = spec.parse_opts({"tier": "small", "project": "ctbench-offline", "dry_run": False}, price_book)
    ex = gke.Executor(dry_run=False, log=lambda _t: None)
    ex.session = FakeSession(FakeResponse(content=(DATA / "gcs_checkpoint.bin").read_bytes()))
    cl = gke.Cluster(o, price_book, ex)
    cl.outputs = spec.placeholder_outputs("ctbench-offline", "small")
    cl.outputs["tesseract_public_key_pem"] = (DATA / "tesseract_pub.pem").read_text()
    head = gke.read_tree(cl, "bench", "tesseract")
    assert head["size"] == 1048611
    assert ex.session.calls == [("GET", gcs.media_url("ctbench-offline-ctb-small-log", "checkpoint"))]
    assert ex.steps[0]["tool"] == "api" and ex.steps[0]["method"] == "GET"
