"""Helpers several command modules share: the engine preflight and planning from arguments."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

from farm.catalog import Catalog
from farm.doctor import check_binfmt, check_disk, check_qemu
from farm.engine import Engine, daemon_version, detect_engine
from farm.errors import EnvironmentProblem
from farm.paths import cache_dir, writable_directory
from farm.plan import BuildJob, plan_job
from farm.resources import builder_resources


def engine_for_dry_run() -> Engine:
    try:
        return detect_engine()
    except EnvironmentProblem:
        # Nothing runs: show the commands a BuildKit-capable classic client would get.
        return Engine(
            kind="classic",
            docker="docker",
            client_version="unknown",
            reason="assumed for --dry-run",
        )


def preflight(platform: str, directories: Mapping[str, Path] | None = None) -> Engine:
    """Fail before BuildKit starts when the daemon or emulation cannot work, or a directory
    the command writes (``{what: path}``) is not a writable directory."""
    for what, path in (directories or {}).items():
        writable_directory(path, what)
    engine = detect_engine()
    daemon_version(engine)
    for check in (check_binfmt(platform), check_qemu(platform), check_disk(engine, cache_dir())):
        if check.status == "fail":
            raise EnvironmentProblem(check.detail, hint=check.fix)
    return engine


def plan_from_args(args: argparse.Namespace, catalog: Catalog) -> BuildJob:
    resources = builder_resources(args.builder_cpus, args.builder_memory)
    return plan_job(
        catalog,
        args.package,
        args.target,
        version=args.package_version,
        python=args.python,
        resources=resources,
        strategy=args.strategy,
    )
