"""``farm build``, ``farm nightly`` and ``farm report``: the whole pipeline on the command line."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from farm import console
from farm.baseimage import images_for, planned_commands
from farm.build import dry_run_commands
from farm.catalog import Catalog
from farm.cli_common import engine_for_dry_run, plan_from_args, preflight
from farm.cli_publish import add_config_option, publish_target
from farm.errors import UsageError
from farm.ledger import Ledger
from farm.nightly import (
    NIGHTLY_SCHEMA_VERSION,
    MatrixCell,
    expand,
    index_lookup,
    mark_published,
    newest_release,
)
from farm.paths import cache_dir, output_dir, state_dir
from farm.pipeline import PIPELINE_SCHEMA_VERSION, PipelineOptions, PipelineResult, Runner
from farm.plan import BuildJob
from farm.process import command_line
from farm.publish import credential_names, twine_argv
from farm.report import provenance_files, render_html, report_document
from farm.resources import builder_resources

BUILD_SCHEMA_VERSION = 2


def add_build_options(build: argparse.ArgumentParser) -> None:
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


def add_commands(commands: Any) -> None:
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


def cmd_build(args: argparse.Namespace, catalog: Catalog) -> int:
    job = plan_from_args(args, catalog)
    out_root = args.output_dir or output_dir()
    target = job.spec.target
    publish = (
        publish_target(args.publish, args.config, target) if args.publish is not None else None
    )
    if args.dry_run:
        return _build_dry_run(job, out_root, args.json, publish, args.no_cache)
    engine = preflight(target.platform, _written(out_root))
    ledger = Ledger(state_dir())
    options = PipelineOptions(
        out_root=out_root,
        cache_dir=cache_dir(),
        force=args.force or args.no_cache,
        no_cache=args.no_cache,
        publish=publish,
        install_check=args.install_check,
    )
    started = time.monotonic()
    with ledger.locked(f"farm build {job.spec.recipe.name} --target {target.name}"):
        result = Runner(job, engine, ledger, options, console.section, console.info).run()
    return _report_build(result, args.json, time.monotonic() - started)


def _written(out_root: Path) -> dict[str, Path]:
    """The directories a pipeline writes, checked before it starts."""
    return {
        "--output-dir": out_root,
        "the state directory (FARM_STATE_DIR)": state_dir(),
        "the cache directory (FARM_CACHE_DIR)": cache_dir(),
    }


def _report_build(result: PipelineResult, as_json: bool, duration_s: float) -> int:
    entry = result.entry
    built, repaired = entry.wheel("build"), entry.wheel("repair")
    if as_json:
        console.print_json(
            {
                "schema_version": BUILD_SCHEMA_VERSION,
                "dry_run": False,
                **result.to_json(),
                "job_dir": entry.job_dir,
                "wheels": [built] if built else [],
                "repaired": [repaired] if repaired else [],
                "log": str(Path(entry.job_dir) / "build.log"),
                "duration_s": round(duration_s, 1),
            }
        )
    else:
        for stage in result.stages:
            console.info(f"{stage.stage:8} {stage.state:8} {stage.detail}")
        if result.wheel is not None:
            console.print_text(f"{result.wheel}\n")
    if not result.did_work and result.ok:
        console.info(f"nothing to do: every stage of key {entry.build_key[:12]} is done")
    if result.error is not None:
        console.error(result.error.message, result.error.hint)
        return result.error.exit_code
    return 0


def _build_dry_run(
    job: BuildJob, out_root: Path, as_json: bool, publish: Any, no_cache: bool
) -> int:
    engine = engine_for_dry_run()
    target = job.spec.target
    sources = images_for(target, job.strategy, cache_dir())
    commands = [command_line(argv, env) for argv, env in planned_commands(sources, engine)]
    commands += dry_run_commands(job, engine, out_root, no_cache)
    if publish is not None:
        wheel = Path("WHEEL")  # named by the build
        argv = twine_argv(publish.location, wheel)
        commands.append(command_line(argv, credential_names(publish.credentials)))
    if as_json:
        console.print_json(
            {
                "schema_version": BUILD_SCHEMA_VERSION,
                "dry_run": True,
                "engine": engine.describe(),
                "commands": commands,
                "job": job.to_json(),
            }
        )
        return 0
    console.info(f"engine: {engine.describe()}")
    where = "in the container"
    if job.spec.recipe.build.kind == "cibuildwheel":
        where = "on this machine, building in a container of the image below"
    header = f"# base image: {target.base_image.pinned} ({target.platform})\n"
    cross = job.to_json()["cross"]
    if cross is not None:
        where = f"in the builder ({cross['build_platform']})"
        header += (
            f"# strategy: cross; builder image {cross['builder_image']}, sysroot copied from "
            f"{cross['sysroot_image']}, compilers {cross['cc']} / {cross['cxx']}"
            + (f", CUDA {cross['nvcc']}" if cross["nvcc"] else "")
            + "\n"
        )
    toolkit = job.to_json()["cuda_toolkit"]
    if toolkit is not None and toolkit["from"] == "packages":
        header += (
            f"# CUDA {toolkit['release']}: stack {toolkit['name']} assembled from "
            f"{len(toolkit['packages'])} pinned packages into {toolkit['image']} "
            "(cached; `farm plan --json` lists them)\n"
        )
    console.print_text(
        header
        + f"# {where}: {' '.join(job.build_command)}\n"
        + "".join(f"+ {command}\n" for command in commands)
    )
    return 0


# --- farm nightly -----------------------------------------------------------------------


def cmd_nightly(args: argparse.Namespace, catalog: Catalog) -> int:
    started = time.monotonic()
    packages = args.packages or sorted(
        name for name, entry in catalog.recipes.items() if entry.model.nightly_targets
    )
    if not packages:
        raise UsageError("no recipe has nightly_targets; pass --package")
    targets = tuple(catalog.target(name).model.name for name in args.targets)
    resources = builder_resources(None, None)
    cells: list[MatrixCell] = []
    notes = []
    for package in packages:
        release = newest_release(catalog.recipe(package).model)
        if release.note:
            notes.append(release.note)
            console.info(f"note: {release.note}")
        cells += expand(catalog, release, targets=targets, resources=resources)
    publish_by_target = {
        cell.target: publish_target(args.registry, args.config, catalog.target(cell.target).model)
        for cell in cells
        if cell.job is not None
    }
    ledger = Ledger(state_dir())
    if not args.force:
        for target_name, publish in publish_by_target.items():
            mark_published(
                [cell for cell in cells if cell.target == target_name],
                ledger,
                args.registry,
                index_lookup(publish.location.simple_url, publish.credentials),
            )
    if args.dry_run:
        return _nightly_report(cells, [], notes, args.json, time.monotonic() - started)
    results = []
    todo = [cell for cell in cells if cell.state == "build" and cell.job is not None]
    if todo:
        engine = preflight(
            todo[0].job.spec.target.platform,  # type: ignore[union-attr]
            _written(args.output_dir or output_dir()),
        )
        with ledger.locked("farm nightly"):
            for number, cell in enumerate(todo, 1):
                assert cell.job is not None  # noqa: S101 - filtered above
                console.info(
                    f"[{number}/{len(todo)}] {cell.package} {cell.version} for {cell.target} "
                    f"(python {cell.python})"
                )
                results.append(
                    _run_cell(cell, args, engine, ledger, publish_by_target[cell.target])
                )
    return _nightly_report(cells, results, notes, args.json, time.monotonic() - started)


def _run_cell(
    cell: MatrixCell, args: argparse.Namespace, engine: Any, ledger: Ledger, publish: Any
) -> PipelineResult:
    assert cell.job is not None  # noqa: S101 - only planned cells run
    options = PipelineOptions(
        out_root=args.output_dir or output_dir(),
        cache_dir=cache_dir(),
        force=args.force,
        publish=publish if args.publish else None,
        build=args.build,
    )
    result = Runner(cell.job, engine, ledger, options, console.section, console.info).run()
    if result.error is not None:
        console.error(f"{cell.package} {cell.version} for {cell.target}: {result.error.message}")
    return result


def _nightly_report(
    cells: list[MatrixCell],
    results: list[PipelineResult],
    notes: list[str],
    as_json: bool,
    duration_s: float,
) -> int:
    failed = [result for result in results if not result.ok]
    todo = sum(1 for cell in cells if cell.state == "build")
    if as_json:
        console.print_json(
            {
                "schema_version": NIGHTLY_SCHEMA_VERSION,
                "pipeline_schema_version": PIPELINE_SCHEMA_VERSION,
                "matrix": [cell.to_json() for cell in cells],
                "runs": [result.to_json() for result in results],
                "notes": notes,
                "built": sum(1 for result in results if result.did_work),
                "failed": len(failed),
                "duration_s": round(duration_s, 2),
            }
        )
    else:
        console.print_table(
            "nightly",
            ("package", "version", "target", "python", "state", "reason"),
            [(c.package, c.version, c.target, c.python, c.state, c.reason) for c in cells],
        )
        ran = f"{len(results)} run" if results or not todo else f"{todo} would run"
        console.info(
            f"{ran}, {len(failed)} failed, "
            f"{sum(1 for c in cells if c.state == 'skip')} already published, "
            f"{sum(1 for c in cells if c.state == 'dropped')} dropped by the rules "
            f"({duration_s:.1f} s)"
        )
    return 1 if failed else 0


# --- farm report ------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace, catalog: Catalog) -> int:
    document = report_document(Ledger(state_dir()))
    for warning in document["warnings"]:
        console.warn(warning["message"])
    if args.html is not None:
        args.html.mkdir(parents=True, exist_ok=True)
        (args.html / "index.html").write_text(render_html(document), encoding="utf-8")
        (args.html / "report.json").write_text(json.dumps(document, indent=2) + "\n")
        for relative, text in provenance_files(document).items():
            (args.html / relative).parent.mkdir(exist_ok=True)
            (args.html / relative).write_text(text, encoding="utf-8")
        console.info(f"wrote {args.html / 'index.html'} and report.json")
    if args.json:
        console.print_json(document)
    elif args.html is None:
        rows = document["rows"]
        console.print_table(
            "farm report",
            ("package", "version", "target", "python", *document["stages"], "size"),
            [
                (
                    row["package"],
                    row["version"],
                    row["target"],
                    row["python"],
                    *[
                        (cell["result"] if cell else "-")
                        for cell in (row["stages"][stage] for stage in document["stages"])
                    ],
                    row["size_human"] or "-",
                )
                for row in rows
            ],
        )
    return 0
