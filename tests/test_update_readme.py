"""README block and PR body: golden outputs from a recorded real run; failures render as failures."""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

from scripts import paths, results, update_readme
from scripts.errors import BadInput

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"   # regenerate after an intended template change


@pytest.fixture()
def doc():
    return json.loads((DATA / "results" / "ok_native.json").read_text())


def failed_doc(doc):
    d = copy.deepcopy(doc)
    d["systems"]["tesseract"] = results.failed_entry("component died during the run: tesseract",
                                                     offered_qps=100.0)
    d["systems"]["tesseract"]["cost"] = doc["systems"]["tesseract"]["cost"]
    d["systems"]["tesseract"]["cost"]["consumed"] = None
    results.finish(d)
    d["finished_at"] = doc["finished_at"]  # keep the golden output independent of the clock
    return d


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE or not path.exists():
        path.write_text(text)
    assert text == path.read_text()


@pytest.mark.parametrize("variant", ["ok", "failed"])
def test_golden_readme_block_and_pr_body(doc, variant):
    d = doc if variant == "ok" else failed_doc(doc)
    _golden(f"readme_block_{variant}.md", update_readme.render(update_readme.README_TEMPLATE, d))
    _golden(f"pr_body_{variant}.md", update_readme.render(update_readme.PR_TEMPLATE, d))


def test_failed_system_renders_as_failed_never_as_a_number(doc):
    block = update_readme.render(update_readme.README_TEMPLATE, failed_doc(doc))
    row = next(line for line in block.splitlines() if line.startswith("| tesseract"))
    assert "**failed**: component died during the run: tesseract" in row
    assert "99.9" not in row and "2,000" not in row


def test_pr_body_shows_the_math(doc):
    body = update_readme.render(update_readme.PR_TEMPLATE, doc)
    t = doc["systems"]["trillian"]
    assert f"({t['tree_size_window_end']} − {t['tree_size_window_start']})" in body
    assert "x 3600 s/h) x 1e6 =" in body and "| **total** |" in body
    assert "quantity × rate × share" in body
    for name in doc["components"]:
        assert f"`{name}` flags:" in body


def test_splice_replaces_only_between_markers():
    readme = "intro\n<!-- BENCHMARK-RESULTS-START -->\nold\n<!-- BENCHMARK-RESULTS-END -->\noutro\n"
    out = update_readme.splice(readme, "new table")
    assert out == "intro\n<!-- BENCHMARK-RESULTS-START -->\nnew table\n<!-- BENCHMARK-RESULTS-END -->\noutro\n"


@pytest.mark.parametrize("readme", ["no markers", "<!-- BENCHMARK-RESULTS-END --> <!-- BENCHMARK-RESULTS-START -->",
                                    "<!-- BENCHMARK-RESULTS-START --><!-- BENCHMARK-RESULTS-START --><!-- BENCHMARK-RESULTS-END -->"])
def test_bad_markers_leave_readme_untouched(tmp_path, doc, readme):
    path = tmp_path / "README.md"
    path.write_text(readme)
    with pytest.raises(BadInput, match="exactly one"):
        update_readme.update_readme(doc, path)
    assert path.read_text() == readme


def test_undefined_template_variable_is_an_error(tmp_path, monkeypatch, doc):
    (tmp_path / "readme_results.md.j2").write_text("{{ run.no_such_thing }}")
    monkeypatch.setattr(paths, "TEMPLATES_DIR", tmp_path)
    with pytest.raises(BadInput, match="no_such_thing"):
        update_readme.render(update_readme.README_TEMPLATE, doc)


def test_report_renders_both_before_writing_either(tmp_path, monkeypatch, doc):
    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- BENCHMARK-RESULTS-START -->\nold\n<!-- BENCHMARK-RESULTS-END -->\n")
    templates = tmp_path / "t"
    templates.mkdir()
    (templates / "readme_results.md.j2").write_text("fine")
    (templates / "pr_body.md.j2").write_text("{{ broken }}")
    monkeypatch.setattr(paths, "TEMPLATES_DIR", templates)
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path / "results")
    with pytest.raises(BadInput):
        update_readme.report(doc, readme=readme)
    assert "old" in readme.read_text()
