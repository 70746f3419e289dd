"""Every ``FARM_*`` variable, read once into one frozen object.

``main()`` builds :class:`Settings` from the environment before any command runs
and hands it down; library code takes the fields it needs and never reads
``os.environ`` for farm's own variables. A bad value is a one-line usage error
naming the variable.

The rest of the environment (registry credentials, ``${NAME}`` in registry
profiles, proxies and CA bundles passed to containers) is kept as ``environ``:
those are other tools' variables, read where they are used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from farm.cudastack import Mirrors
from farm.engine import EngineChoice
from farm.errors import UsageError
from farm.publish import RetryPolicy
from farm.resources import BuilderResources, builder_resources

CACHE_ENV = "FARM_CACHE_DIR"
OUTPUT_ENV = "FARM_OUTPUT_DIR"
STATE_ENV = "FARM_STATE_DIR"
RECIPES_ENV = "FARM_RECIPES"
CONFIG_ENV = "FARM_CONFIG"
CPUS_ENV = "FARM_BUILDER_CPUS"
MEMORY_ENV = "FARM_BUILDER_MEMORY_GIB"
ATTEMPTS_ENV = "FARM_PUBLISH_ATTEMPTS"
BACKOFF_ENV = "FARM_PUBLISH_BACKOFF_S"
DEBUG_ENV = "FARM_DEBUG"  # set: unexpected exceptions show their traceback


@dataclass(frozen=True, kw_only=True)
class Settings:
    cache_dir: Path  # root filesystems, downloads: FARM_CACHE_DIR or $XDG_CACHE_HOME/farm
    output_dir: Path  # job directories: FARM_OUTPUT_DIR or ./out
    state_dir: Path  # ledger, local registry: FARM_STATE_DIR or $XDG_DATA_HOME/farm
    recipe_dirs: tuple[Path, ...] = ()  # FARM_RECIPES, os.pathsep-separated
    registry_config: Path | None = None  # FARM_CONFIG
    engine: EngineChoice = field(
        default_factory=EngineChoice
    )  # FARM_ENGINE, FARM_DOCKER, FARM_BUILDX_*
    builder_cpus: int | None = None  # FARM_BUILDER_CPUS
    builder_memory_gib: float | None = None  # FARM_BUILDER_MEMORY_GIB
    publish_retry: RetryPolicy = field(
        default_factory=RetryPolicy
    )  # FARM_PUBLISH_ATTEMPTS, FARM_PUBLISH_BACKOFF_S
    mirrors: Mirrors = field(
        default_factory=Mirrors
    )  # FARM_DEBIAN_MIRROR, FARM_PYPI_INDEX (else PIP_INDEX_URL)
    debug: bool = False  # FARM_DEBUG
    home: Path = field(default_factory=Path.home)
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        home = Path(environ.get("HOME") or Path.home())
        cpus = _number(environ, CPUS_ENV)
        return cls(
            cache_dir=_xdg(environ, CACHE_ENV, "XDG_CACHE_HOME", home / ".cache"),
            output_dir=Path(environ.get(OUTPUT_ENV) or "out"),
            state_dir=_xdg(environ, STATE_ENV, "XDG_DATA_HOME", home / ".local" / "share"),
            recipe_dirs=tuple(Path(p) for p in environ.get(RECIPES_ENV, "").split(os.pathsep) if p),
            registry_config=Path(environ[CONFIG_ENV]) if environ.get(CONFIG_ENV) else None,
            engine=EngineChoice.from_environ(environ),
            builder_cpus=None if cpus is None else int(cpus),
            builder_memory_gib=_number(environ, MEMORY_ENV),
            publish_retry=_retry_policy(environ),
            mirrors=Mirrors.from_environ(environ),
            debug=bool(environ.get(DEBUG_ENV)),
            home=home,
            environ=MappingProxyType(dict(environ)),
        )

    def builder_resources(
        self, cpus: int | None = None, memory_gib: float | None = None
    ) -> BuilderResources:
        """The builder's figures: the command line's, else these settings', else the host's."""
        return builder_resources(
            cpus,
            memory_gib,
            configured_cpus=self.builder_cpus,
            configured_memory_gib=self.builder_memory_gib,
        )


def _xdg(environ: Mapping[str, str], own: str, xdg: str, fallback: Path) -> Path:
    if environ.get(own):
        return Path(environ[own])
    return Path(environ.get(xdg) or fallback) / "farm"


def _number(environ: Mapping[str, str], name: str) -> float | None:
    raw = environ.get(name)
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise UsageError(f"environment variable {name}={raw!r} is not a number") from None


def _retry_policy(environ: Mapping[str, str]) -> RetryPolicy:
    attempts = _number(environ, ATTEMPTS_ENV)
    first = _number(environ, BACKOFF_ENV)
    if attempts is not None and (attempts < 1 or attempts != int(attempts)):
        raise UsageError(f"environment variable {ATTEMPTS_ENV}={attempts:g}: must be a whole >= 1")
    if first is not None and first < 0:
        raise UsageError(f"environment variable {BACKOFF_ENV}={first:g}: must be >= 0")
    return RetryPolicy(
        attempts=4 if attempts is None else int(attempts),
        first_delay_s=1.0 if first is None else first,
    )
