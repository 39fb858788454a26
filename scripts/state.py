"""The deployment state file: what deploy started, so every later step can run alone in a new process.

JSON, written atomically with mode 0600 (it holds the database password). `load` validates the shape
so a hand-edited or truncated file is a clear BadInput, not a traceback.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from scripts import paths
from scripts.errors import BadInput

STATE_VERSION = 1


def state_file() -> Path:
    return paths.STATE_DIR / "state.json"


def save(state: dict[str, Any], path: Path | None = None) -> None:
    path = path or state_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    state = {**state, "version": STATE_VERSION}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".state-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(state, fh, indent=2, sort_keys=True)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def exists(path: Path | None = None) -> bool:
    return (path or state_file()).exists()


CLEANUP_HINT = "run `inv down` to clean up"


def load(path: Path | None = None, *, required: bool = True, hint: str = CLEANUP_HINT) -> dict[str, Any] | None:
    path = path or state_file()
    if not path.exists():
        if required:
            raise BadInput("nothing is deployed (no state file): run `inv deploy` first")
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BadInput(f"state file {path} is unreadable or not JSON ({' '.join(str(exc).split())}); "
                       f"{hint}") from None
    problem = _check(doc)
    if problem:
        raise BadInput(f"state file {path}: {problem}; {hint}")
    return doc


def _check(doc: Any) -> str:
    if not isinstance(doc, dict):
        return "expected a JSON object"
    if doc.get("version") != STATE_VERSION:
        return f"unsupported version {doc.get('version')!r} (expected {STATE_VERSION})"
    for key, kind in (("target", str), ("components", dict), ("systems", dict)):
        if not isinstance(doc.get(key), kind):
            return f"'{key}' missing or not a {kind.__name__}"
    for name, rec in doc["components"].items():
        if not isinstance(rec, dict) or not isinstance(rec.get("pid"), int):
            return f"component {name!r} has no integer pid"
    return ""


def stop_order(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Components newest first (the reverse of start order), so clients stop before their servers."""
    return sorted(doc["components"].items(), key=lambda item: item[1].get("seq", 0), reverse=True)


def remove(path: Path | None = None) -> None:
    (path or state_file()).unlink(missing_ok=True)
