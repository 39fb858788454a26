"""State file: atomic 0600 writes, shape checks, stop order."""
from __future__ import annotations

import json
import stat

import pytest

from scripts import state
from scripts.errors import BadInput

GOOD = {"target": "local", "components": {"a": {"pid": 1, "seq": 0}, "b": {"pid": 2, "seq": 1}}, "systems": {}}


def test_round_trip_mode_0600(tmp_path):
    path = tmp_path / "s" / "state.json"
    state.save(GOOD, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert state.load(path)["components"]["a"]["pid"] == 1


def test_missing_state_is_a_clear_bad_input(tmp_path):
    with pytest.raises(BadInput, match="run `inv deploy` first"):
        state.load(tmp_path / "none.json")
    assert state.load(tmp_path / "none.json", required=False) is None


@pytest.mark.parametrize("content, needle", [
    ("{not json", "not JSON"),
    ("[]", "expected a JSON object"),
    (json.dumps({**GOOD, "version": 9}), "unsupported version"),
    (json.dumps({**GOOD, "version": 1, "components": {"x": {"pid": "12"}}}), "no integer pid"),
    (json.dumps({"version": 1, "target": "local", "systems": {}}), "'components' missing"),
])
def test_malformed_state_is_bad_input(tmp_path, content, needle):
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(BadInput, match=needle):
        state.load(path)


def test_stop_order_is_reverse_start_order():
    assert [n for n, _ in state.stop_order(GOOD)] == ["b", "a"]
