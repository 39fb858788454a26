"""Smoke diagnoses name the likely cause."""
from __future__ import annotations

import pytest

from scripts import smoke
from scripts.errors import RunFailed


@pytest.mark.parametrize("status, error, needle", [
    (404, "", "prefix or origin mismatch"),
    (400, "", "not accepted"),
    (429, "", "pushback or quota"),
    (503, "", "pushback or quota"),
    (500, "", "server error"),
    (None, "Connection refused by 127.0.0.1", "component is down"),
    (None, "Read timed out", "stalled"),
    (302, "", "unexpected HTTP 302"),
])
def test_diagnose(status, error, needle):
    assert needle in smoke.diagnose(status, error)


def test_systems_to_check():
    st = {"systems": {"trillian": {}, "tesseract": {}}, "systems_requested": ["trillian", "tesseract"]}
    assert smoke.systems_to_check(st, None) == ["trillian", "tesseract"]
    assert smoke.systems_to_check(st, ("tesseract",)) == ["tesseract"]
    with pytest.raises(RunFailed, match="not deployed: tesseract"):
        smoke.systems_to_check({"systems": {"trillian": {}}}, ("tesseract",))
