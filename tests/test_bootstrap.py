"""Bootstrap: rebuild only when a pin changes; clear messages for a missing or old Go."""
from __future__ import annotations

import pytest

from scripts import bootstrap, paths
from scripts.errors import BadInput


def test_required_go_is_the_newest_go_directive():
    need = bootstrap.required_go()
    assert bootstrap._version_tuple(need) >= (1, 24)


def test_stamp_changes_with_pins_and_go(tmp_path, monkeypatch):
    a = bootstrap.stamp("trillian", "1.26.8")
    assert a == bootstrap.stamp("trillian", "1.26.8")
    assert a != bootstrap.stamp("trillian", "1.26.9")
    assert a != bootstrap.stamp("ctgo", "1.26.8")


def test_old_go_is_named(monkeypatch):
    monkeypatch.setattr(bootstrap, "go_version", lambda: "1.20.1")
    with pytest.raises(BadInput, match=r"Go 1\.20\.1 is too old: Go .* or newer"):
        bootstrap.check_go()


def test_missing_go_is_named(monkeypatch):
    monkeypatch.setattr(bootstrap.shutil, "which", lambda name: None)
    with pytest.raises(BadInput, match="Go is not installed: Go .* or newer is needed"):
        bootstrap.go_version()


def test_up_to_date_modules_are_not_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "BIN_DIR", tmp_path)
    for module, binaries in bootstrap.MODULES.items():
        for b in binaries:
            (tmp_path / b).write_text("")
        (tmp_path / f".stamp-{module}").write_text(bootstrap.stamp(module, "1.26.8") + "\n")
    calls = []
    monkeypatch.setattr(bootstrap.proc, "run", lambda *a, **k: calls.append(a))
    assert set(bootstrap.build_tools("1.26.8", log=lambda *_: None).values()) == {"up to date"}
    assert calls == []
