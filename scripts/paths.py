"""Where things live: repo-local, git-ignored directories for binaries, state and PKI."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOOLS_DIR = REPO / "tools"            # Go tool modules: the upstream pins live here, one go.mod each
TEMPLATES_DIR = REPO / "templates"
SCHEMAS_DIR = REPO / "schemas"
COSTS_FILE = Path(os.environ["CTB_COSTS_FILE"]).resolve() if os.environ.get("CTB_COSTS_FILE") else REPO / "costs.json"


def _dir_from_env(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).resolve() if value else default


# Overridable so tests (and parallel checkouts) can keep their own copies.
BIN_DIR = _dir_from_env("CTB_BIN_DIR", REPO / "bin")
STATE_DIR = _dir_from_env("CTB_STATE_DIR", REPO / ".state")
RESULTS_DIR = _dir_from_env("CTB_RESULTS_DIR", REPO / "results")
PKI_DIR = _dir_from_env("CTB_PKI_DIR", STATE_DIR / "pki")
README = Path(os.environ["CTB_README"]).resolve() if os.environ.get("CTB_README") else REPO / "README.md"
