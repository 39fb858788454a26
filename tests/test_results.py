"""Results documents: schema-enforced honesty, atomic writes, latest pointer, fingerprints."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from scripts import paths, results
from scripts.errors import BadInput

DATA = Path(__file__).parent / "data" / "results"


@pytest.fixture()
def doc():
    return json.loads((DATA / "ok_native.json").read_text())


def test_recorded_real_run_is_valid(doc):
    results.validate(doc, "recorded")
    assert doc["status"] == "ok" and doc["systems"]["trillian"]["qps"] > 0


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d["systems"]["trillian"].update(status="failed", reason="x"), "None was expected"),
    (lambda d: d["systems"]["trillian"].update(status="failed", reason="", qps=None), "should be non-empty"),
    (lambda d: d["systems"]["trillian"].update(qps=0), "less than or equal to the minimum"),
    (lambda d: d["systems"]["trillian"].update(entries_integrated=0), "less than the minimum"),
    (lambda d: d["systems"]["trillian"].pop("resources"), "'resources' is a required property"),
    (lambda d: d.update(schema_version=2), "1 was expected"),
    (lambda d: d["systems"].update(etcd={"status": "ok", "reason": "", "qps": 1}), "etcd"),
    (lambda d: d.pop("fingerprint"), "'fingerprint' is a required property"),
])
def test_schema_rejects_dishonest_or_broken_documents(doc, mutate, needle):
    mutate(doc)
    with pytest.raises(BadInput) as err:
        results.validate(doc, "doc")
    assert needle in str(err.value)


def test_failed_system_without_a_number_is_valid(doc):
    doc["systems"]["trillian"] = results.failed_entry("component died during the run: trillian_log_signer")
    results.validate(doc, "doc")


def test_save_and_load_round_trip_with_latest(tmp_path, monkeypatch, doc):
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path)
    path = results.save(doc, samples={"x": 1})
    assert path == tmp_path / doc["run_id"] / "results.json"
    assert (tmp_path / "latest").resolve() == (tmp_path / doc["run_id"]).resolve()
    assert results.load() == doc
    assert results.load(tmp_path / doc["run_id"]) == doc


def test_invalid_document_is_never_written(tmp_path, monkeypatch, doc):
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path)
    results.save(doc)
    before = (tmp_path / doc["run_id"] / "results.json").read_bytes()
    bad = copy.deepcopy(doc)
    bad["systems"]["tesseract"]["qps"] = -1
    with pytest.raises(BadInput):
        results.save(bad)
    assert (tmp_path / doc["run_id"] / "results.json").read_bytes() == before


@pytest.mark.parametrize("content, needle", [
    ("{", "not readable JSON"),
    ('{"schema_version": 7}', "schema_version 7 is not supported"),
    ('{"schema_version": 1}', "is a required property"),
])
def test_load_rejects_bad_files(tmp_path, content, needle):
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(BadInput, match=needle):
        results.load(path)


def test_load_without_runs_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path)
    with pytest.raises(BadInput, match="run `inv bench`"):
        results.load()


def test_finish_sets_overall_status(doc):
    d = copy.deepcopy(doc)
    assert results.finish(d)["status"] == "ok"
    d["systems"]["tesseract"] = results.failed_entry("x")
    assert results.finish(d)["status"] == "failed"
    d["systems"]["trillian"] = {"status": "running", "reason": "", "qps": None}
    out = results.finish(d, interrupted=True)
    assert out["status"] == "interrupted" and out["systems"]["trillian"]["status"] == "interrupted"


def test_fingerprint_tracks_what_makes_runs_comparable(doc):
    a = results.fingerprint(doc)
    d = copy.deepcopy(doc)
    d["settings"]["qps"] = 999
    assert results.fingerprint(d) != a
    d = copy.deepcopy(doc)
    d["run_id"] = "20990101T000000Z-ffff"
    assert results.fingerprint(d) == a


def test_summary_table_shows_failures_as_failures(doc):
    d = copy.deepcopy(doc)
    d["systems"]["tesseract"] = results.failed_entry("load generator exited before the window ended")
    table = results.summary_table(d)
    assert "failed: load generator exited" in table and "98.9" in table
