"""Where farm finds its own data (catalog, templates) and keeps caches, outputs and state."""

from __future__ import annotations

import os
from pathlib import Path

from farm.errors import EnvironmentProblem, host_fault

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


def state_dir() -> Path:
    """Where the farm keeps state between runs: ``FARM_STATE_DIR`` or XDG data home."""
    configured = os.environ.get("FARM_STATE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "farm"


def writable_directory(path: Path, what: str) -> Path:
    """``path`` as a directory this user can write, made if missing; else a host fault naming
    ``what`` (``--output-dir``, the state directory) before any work starts."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise host_fault(exc, what) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise EnvironmentProblem(
            f"{what}: {path} is not writable by this user",
            hint="make it writable, or choose another directory",
        )
    return path
