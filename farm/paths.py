"""Where farm finds its own data: the catalog and the Dockerfile templates."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """``recipes`` or ``dockerfiles``: from a source checkout, else from the wheel."""
    checkout = _PACKAGE.parent / name
    if (_PACKAGE.parent / "pyproject.toml").is_file() and checkout.is_dir():
        return checkout
    return _PACKAGE / "_data" / name


def cache_dir() -> Path:
    """Where inputs-keyed artefacts live (root filesystems): ``FARM_CACHE_DIR`` or XDG cache."""
    configured = os.environ.get("FARM_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "farm"


def output_dir() -> Path:
    """Where wheels, logs and records of jobs go: ``FARM_OUTPUT_DIR`` or ``./out``."""
    return Path(os.environ.get("FARM_OUTPUT_DIR") or "out")
