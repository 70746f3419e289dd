"""Where farm finds its own data (catalog, templates); whether a directory can be written.

The cache, output and state directories are :class:`farm.settings.Settings` fields."""

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
