"""Locate files shipped with lfkit (templates/, dataset_info/, recipes/).

In a source checkout (editable install) they live at the repository root; in a
wheel they are packaged under ``lfkit/_data/``.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent


def resource_dir(name: str) -> Path:
    """Return the folder ``name`` (``templates``, ``dataset_info`` or ``recipes``)."""
    for candidate in (REPO_ROOT / name, PACKAGE_DIR / "_data" / name):
        if candidate.is_dir():
            return candidate
    looked = f"{REPO_ROOT} and {PACKAGE_DIR / '_data'}"
    raise FileNotFoundError(f"lfkit resource folder '{name}' not found (looked in {looked})")


def cache_dir() -> Path:
    """Where lfkit keeps prepared models and other derived artefacts (``$LFKIT_HOME``)."""
    root = Path(os.environ.get("LFKIT_HOME", Path.home() / ".cache" / "lfkit"))
    root.mkdir(parents=True, exist_ok=True)
    return root
