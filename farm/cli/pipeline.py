"""``farm build``, ``farm nightly`` and ``farm report``: the whole pipeline on the command line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from farm import console, runs
from farm.catalog import Catalog
from farm.cli._shared import add_config_option, add_job_arguments, add_json, job_from_args
from farm.errors import EXIT_FAILURE, EXIT_OK
from farm.ledger import Ledger
from farm.nightly import MatrixCell, NightlyAsk, NightlyRun, Reporter, run_nightly
from farm.report import report_document, write_site
from farm.settings import Settings


def _add_build(commands: Any) -> None:
    build = commands.add_parser(
        "build",
        help="build the wheel(s) for a package and target",
        description="Plan, render and build with BuildKit for the target platform (QEMU on "
        "x86_64), then export the wheels into the output directory. A target with a "
        "bootstrapped base image gets it built (and cached) first.",
    )
    add_job_arguments(build)
    build.add_argument(
        "--output-dir",
        type=Path,
        metavar="DIR",
        help="where job directories go (default: FARM_OUTPUT_DIR or ./out)",
    )
    build.add_argument(
        "--dry-run",
        action="store_true",
        help="print the exact commands (secrets masked) and run nothing",
    )
    add_json(build)
    build.add_argument(
        "--publish",
        metavar="REGISTRY",
        help="after the smoke test passed, publish to this registry profile and install the "
        "wheel back from it in a fresh target container. The registry is resolved before "
        "building (a stopped local registry ends the command here), and a file name the "
        "index holds with other bytes gets the next PEP 427 build number, as in `farm publish`",
    )
    build.add_argument(
        "--force", action="store_true", help="run every stage again, even those the ledger has"
    )
    build.add_argument(
        "--no-cache",
        action="store_true",
        help="run every Dockerfile step again without BuildKit's layer cache; cache mounts "
        "(the compiler cache) are kept, so a rebuild measures a warm compile. Implies --force",
    )
    build.add_argument(
        "--no-install-check",
        dest="install_check",
        action="store_false",
        help="do not install the published wheel back from the index",
    )
    add_config_option(build)
    build.set_defaults(handler=cmd_build)


def add_commands(commands: Any) -> None:
    _add_build(commands)
    nightly = commands.add_parser(
        "nightly",
        help="build what the newest upstream release still lacks, and publish it",
        description="Resolve the newest upstream release of each recipe with nightly targets, "
        "expand it over those targets and their Pythons, drop what the rules forbid, skip "
        "what the registry already holds (asked now, not only the ledger) and run the "
        "pipeline for the rest. A failure does not stop the others; the exit code is 1 if "
        "any failed.",
    )
    nightly.add_argument(
        "-r", "--registry", required=True, help="registry profile to check and publish to"
    )
    nightly.add_argument(
        "-p",
        "--package",
        dest="packages",
        action="append",
        default=[],
        help="only this recipe (repeatable; default: every recipe with nightly_targets)",
    )
    nightly.add_argument(
        "-t",
        "--target",
        dest="targets",
        action="append",
        default=[],
        help="only this target (repeatable)",
    )
    nightly.add_argument(
        "--no-publish",
        dest="publish",
        action="store_false",
        help="build and smoke-test only (a later `farm nightly --no-build` publishes)",
    )
    nightly.add_argument(
        "--no-build",
        dest="build",
        action="store_false",
        help="publish what earlier runs built and smoke-tested; build nothing",
    )
    nightly.add_argument("--force", action="store_true", help="rebuild even what is published")
    nightly.add_argument(
        "--dry-run", action="store_true", help="print the matrix and what would run"
    )
    nightly.add_argument("--json", action="store_true", help="print a versioned JSON document")
    nightly.add_argument("--output-dir", type=Path, metavar="DIR", help="default ./out")
    add_config_option(nightly)
    nightly.set_defaults(handler=cmd_nightly)

    report = commands.add_parser(
        "report",
        help="the ledger as a target x version x stage matrix",
        description="Every build key in the ledger with each stage's result, duration and the "
        "wheel size; as a table, versioned JSON, or a static HTML page for GitLab Pages.",
    )
    report.add_argument("--json", action="store_true", help="print the JSON document")
    report.add_argument(
        "--html", type=Path, metavar="DIR", help="write DIR/index.html and DIR/report.json"
    )
    report.set_defaults(handler=cmd_report)


# --- farm build -------------------------------------------------------------------------


def cmd_build(args: argparse.Namespace, catalog: Catalog, settings: Settings) -> int:
    job = job_from_args(args, catalog, settings)
    ask = runs.BuildAsk(
        out_root=args.output_dir,
        publish=args.publish,
        config_path=args.config,
        force=args.force,
        no_cache=args.no_cache,
        install_check=args.install_check,
    )
    if job.emulation_warning is not None:
        console.warn(job.emulation_warning)
    if args.dry_run:
        return _print_dry_run(runs.dry_run(job, settings, ask), args.json)
    outcome = runs.build(job, settings, ask, console.section, console.info)
    result = outcome.result
    if args.json:
        console.print_json(outcome.to_json())
    else:
        for stage in result.stages:
            console.info(f"{stage.stage:8} {stage.state:8} {stage.detail}")
        if result.wheel is not None:
            console.print_text(f"{result.wheel}\n")
    if not result.did_work and result.ok:
        console.info(f"nothing to do: every stage of key {result.entry.build_key[:12]} is done")
    if result.error is not None:
        console.error(result.error.message, result.error.hint)
        return result.error.exit_code
    return EXIT_OK


def _print_dry_run(plan: runs.DryRun, as_json: bool) -> int:
    if as_json:
        console.print_json(plan.to_json())
        return EXIT_OK
    console.info(f"engine: {plan.engine.describe()}")
    console.print_text(plan.header() + "".join(f"+ {command}\n" for command in plan.commands))
    return EXIT_OK


# --- farm nightly -----------------------------------------------------------------------


def cmd_nightly(args: argparse.Namespace, catalog: Catalog, settings: Settings) -> int:
    ask = NightlyAsk(
        registry=args.registry,
        packages=tuple(args.packages),
        targets=tuple(args.targets),
        publish=args.publish,
        build=args.build,
        force=args.force,
        dry_run=args.dry_run,
        out_root=args.output_dir,
        config_path=args.config,
    )
    reporter = Reporter(section=console.section, info=console.info, error=console.error)
    run = run_nightly(catalog, settings, ask, reporter)
    if args.json:
        console.print_json(run.to_json())
    else:
        _print_nightly(run)
    return EXIT_FAILURE if run.failed else EXIT_OK


def _why(cell: MatrixCell) -> str:
    """The cell's state, and why its version when it is not the newest release."""
    if cell.chosen_because is None or cell.chosen_because == "newest release":
        return cell.reason
    return f"{cell.reason} ({cell.chosen_because})"


def _print_nightly(run: NightlyRun) -> None:
    console.print_table(
        "nightly",
        ("package", "version", "target", "python", "state", "reason"),
        [(c.package, c.version, c.target, c.python, c.state, _why(c)) for c in run.cells],
    )
    todo = run.count("build")
    ran = f"{len(run.results)} run" if run.results or not todo else f"{todo} would run"
    console.info(
        f"{ran}, {run.failed} failed, {run.count('skip')} already published, "
        f"{run.count('dropped')} dropped by the rules ({run.duration_s:.1f} s)"
    )


# --- farm report ------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace, catalog: Catalog, settings: Settings) -> int:
    document = report_document(Ledger(settings.state_dir))
    for warning in document["warnings"]:
        console.warn(warning["message"])
    if args.html is not None:
        page = write_site(document, args.html)
        console.info(f"wrote {page} and report.json")
    if args.json:
        console.print_json(document)
    elif args.html is None:
        _print_report(document)
    return EXIT_OK


def _print_report(document: dict[str, Any]) -> None:
    stages = document["stages"]
    console.print_table(
        "farm report",
        ("package", "version", "target", "python", *stages, "size"),
        [
            (
                row["package"],
                row["version"],
                row["target"],
                row["python"],
                *[(cell["result"] if cell else "-") for cell in map(row["stages"].get, stages)],
                row["size_human"] or "-",
            )
            for row in document["rows"]
        ],
    )
