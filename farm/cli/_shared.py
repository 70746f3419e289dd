"""What several command modules share: argument helpers and the handler's signature."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from farm.catalog import Catalog
from farm.plan import BuildJob, plan_job
from farm.settings import Settings

# A command: parsed arguments, the loaded catalog and the settings in; an exit code
# (a farm.errors EXIT_* constant) out.
Handler = Callable[[argparse.Namespace, Catalog, Settings], int]


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print a versioned JSON document instead of a table"
    )


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="registry profiles (default: $FARM_CONFIG, ./farm.toml or [tool.farm] "
        "in ./pyproject.toml; 'local' is always there)",
    )


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("package", help="package recipe name, e.g. onnxruntime-gpu")
    parser.add_argument(
        "-t", "--target", required=True, help="target name or alias, e.g. jetpack6 or jp6"
    )
    parser.add_argument(
        "--version",
        dest="package_version",
        metavar="VERSION",
        help="package version (default: the recipe's default for the target)",
    )
    parser.add_argument(
        "--python",
        metavar="X.Y",
        help="Python version (default: the first the target has that fits)",
    )
    parser.add_argument(
        "--strategy",
        choices=("emulated", "cross"),
        help="emulated: the whole build in the target-architecture container (QEMU on "
        "x86_64); cross: native compilers against the target's sysroot (default: the "
        "recipe's strategy for the target)",
    )
    parser.add_argument(
        "--builder-cpus",
        type=positive_int,
        metavar="N",
        help="CPUs of the builder (default: FARM_BUILDER_CPUS or this machine)",
    )
    parser.add_argument(
        "--builder-memory",
        type=positive_float,
        metavar="GIB",
        help="memory of the builder in GiB (default: FARM_BUILDER_MEMORY_GIB or this machine)",
    )


def job_from_args(args: argparse.Namespace, catalog: Catalog, settings: Settings) -> BuildJob:
    """The job that :func:`add_job_arguments`' arguments ask for."""
    return plan_job(
        catalog,
        args.package,
        args.target,
        version=args.package_version,
        python=args.python,
        resources=settings.builder_resources(args.builder_cpus, args.builder_memory),
        strategy=args.strategy,
    )


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be above 0")
    return value
