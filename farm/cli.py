"""The ``farm`` command line. ``main(argv)`` returns the exit code and is what tests call."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from farm import __version__, cli_pipeline, cli_publish, console
from farm.baseimage import ensure_base_image
from farm.catalog import Catalog, catalog_dirs, display, load_catalog
from farm.cli_common import plan_from_args, preflight
from farm.compat import select
from farm.doctor import run_checks
from farm.errors import (
    EXIT_ENVIRONMENT,
    EXIT_FAILURE,
    FarmError,
    IncompatibleError,
    Interrupted,
    UsageError,
    error_document,
    host_fault,
    signals_raise,
)
from farm.inspect import inspect_wheel
from farm.paths import cache_dir
from farm.plan import plan_document
from farm.provenance import provenance_lines
from farm.repair import RepairedWheel, run_repair
from farm.smoke import (
    CHECK_TIMEOUT_S,
    SmokeReport,
    expected_providers,
    run_smoke,
    smoke_for_wheel,
    wheel_providers,
)

CATALOG_SCHEMA_VERSION = 1
BUILD_SCHEMA_VERSION = 1

DESCRIPTION = """\
Build onnxruntime-gpu (and other) wheels for NVIDIA Jetson on x86_64 machines.

A target (jetpack5, jetpack6, jetpack7, bookworm-arm64) is chosen by you, never
detected from the machine farm runs on. Recipes say how a package is built and
which of its versions fit which target.
"""

WORKFLOW = """\
workflow:
  farm targets                                   what wheels can be built for
  farm recipes                                   packages, versions, default per target
  farm plan onnxruntime-gpu --target jetpack6    the job: version, image, build command, key
  farm render onnxruntime-gpu --target jetpack6  the Dockerfile BuildKit will build
  farm doctor                                    can this machine build? (fixes for what not)
  farm build demo --target bookworm-arm64        a real aarch64 wheel, built under QEMU
  farm repair WHEEL --target bookworm-arm64      auditwheel repair in the target, verified
  farm inspect WHEEL --target jetpack6           can this wheel work there? (any wheel)
  farm build onnxruntime-gpu --target jp6 --dry-run
                                                 the exact BuildKit commands, nothing run
  farm registry serve --detach                   a local pypiserver index on 127.0.0.1
  farm publish WHEEL --registry local            upload once, verified by sha256
  farm index-config --target jp6 --tool uv       what a project pastes to install from it

configuration:
  --recipes DIR / FARM_RECIPES     extra catalog directories (targets/*.yaml, packages/*.yaml)
  FARM_BUILDER_CPUS, FARM_BUILDER_MEMORY_GIB
                                   the builder's size when it is not this machine
  FARM_ENGINE=buildx|classic, FARM_DOCKER=PATH, FARM_BUILDX_BUILDER, FARM_BUILDX_CACHE
                                   the BuildKit client (default: detected; see farm doctor)
  FARM_OUTPUT_DIR, FARM_CACHE_DIR  job outputs (./out), cached root filesystems (~/.cache/farm)
  FARM_STATE_DIR                   the local registry and run state (~/.local/share/farm)
  FARM_CONFIG / farm.toml / [tool.farm]
                                   registry profiles (gitlab, devpi, pypiserver, generic)
  TWINE_USERNAME/TWINE_PASSWORD, CI_JOB_TOKEN, .pypirc, .netrc
                                   registry credentials (never on the command line)
  FARM_PUBLISH_ATTEMPTS, FARM_PUBLISH_BACKOFF_S
                                   upload retries (4) and first backoff in seconds (1)

exit codes: 0 success, 1 a stage failed, 2 bad input (arguments, recipes, combinations),
            3 the host lacks something (docker, QEMU, disk)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="farm",
        description=DESCRIPTION,
        epilog=WORKFLOW,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"farm {__version__}")
    parser.add_argument(
        "--recipes",
        metavar="DIR",
        type=Path,
        action="append",
        default=[],
        help="an extra catalog directory; repeatable; its files replace "
        "built-in ones of the same name",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    targets = commands.add_parser(
        "targets",
        help="list the targets",
        description="List the targets with their JetPack, CUDA, cuDNN, TensorRT, Python and glibc.",
    )
    _add_json(targets)
    targets.set_defaults(handler=cmd_targets)

    recipes = commands.add_parser(
        "recipes",
        help="list the package recipes",
        description="List the package recipes, their versions and "
        "the version each target gets by default.",
    )
    _add_json(recipes)
    recipes.set_defaults(handler=cmd_recipes)

    plan = commands.add_parser(
        "plan",
        help="show the build job for a package and target",
        description="Resolve version and Python by the recipe's rules, "
        "size parallelism from the builder's memory and "
        "print the job. Runs nothing.",
    )
    _add_job_arguments(plan)
    _add_json(plan)
    plan.set_defaults(handler=cmd_plan)

    render = commands.add_parser(
        "render",
        help="print the Dockerfile for a job",
        description="Print the Dockerfile rendered for the job that `farm plan` shows.",
    )
    _add_job_arguments(render)
    render.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write to FILE instead of standard output"
    )
    render.set_defaults(handler=cmd_render)

    doctor = commands.add_parser(
        "doctor",
        help="check that this machine can build for the targets",
        description="Check the docker engine, BuildKit, QEMU emulation, disk and memory; every "
        "failed check prints the exact fix. Exit 3 when a check fails.",
    )
    _add_json(doctor)
    doctor.set_defaults(handler=cmd_doctor)

    build = commands.add_parser(
        "build",
        help="build the wheel(s) for a package and target",
        description="Plan, render and build with BuildKit for the target platform (QEMU on "
        "x86_64), then export the wheels into the output directory. A target with a "
        "bootstrapped base image gets it built (and cached) first.",
    )
    _add_job_arguments(build)
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
    _add_json(build)
    cli_pipeline.add_build_options(build)
    build.set_defaults(handler=cli_pipeline.cmd_build)

    repair = commands.add_parser(
        "repair",
        help="auditwheel-repair a wheel to the target's manylinux tag",
        description="Run auditwheel repair inside the target image (QEMU on x86_64) with the "
        "target's provided libraries excluded and symbols stripped, then verify the "
        "result with auditwheel show --json. Prints sizes before and after.",
    )
    repair.add_argument("wheel", type=Path, help="path to a .whl file")
    repair.add_argument("-t", "--target", required=True, help="target name or alias")
    repair.add_argument(
        "--output-dir",
        type=Path,
        metavar="DIR",
        default=Path("wheelhouse"),
        help="where the repaired wheel goes (default: ./wheelhouse)",
    )
    _add_json(repair)
    repair.set_defaults(handler=cmd_repair)

    smoke = commands.add_parser(
        "smoke",
        help="install a wheel in a fresh target container and test it",
        description="Install the wheel with its dependencies in a clean virtual environment of "
        "a fresh target-platform container (QEMU on x86_64), then run the smoke test "
        "of its recipe: for onnxruntime, providers compiled in and a real session "
        "compared with numpy. Exit 1 naming the failed check.",
    )
    smoke.add_argument("wheel", type=Path, help="path to a .whl file")
    smoke.add_argument("-t", "--target", required=True, help="target name or alias")
    device = smoke.add_mutually_exclusive_group()
    device.add_argument(
        "--on-device",
        dest="device",
        action="store_const",
        const="on",
        default="auto",
        help="running on the target device with its GPU: the session must run on "
        "the GPU providers, not fall back to the CPU (default: detected on a Jetson "
        "from /etc/nv_tegra_release and the GPU device nodes in the container)",
    )
    device.add_argument(
        "--no-device",
        dest="device",
        action="store_const",
        const="off",
        help="check compiled-in providers only, even on a Jetson",
    )
    smoke.add_argument(
        "--expect-provider",
        action="append",
        default=[],
        metavar="NAME",
        help="an execution provider the wheel must have (repeatable; default: "
        "the recipe's expectation for the target)",
    )
    smoke.add_argument(
        "--output-dir",
        type=Path,
        metavar="DIR",
        help="where the smoke record goes (default: next to the wheel)",
    )
    smoke.add_argument(
        "--timeout",
        type=_positive_float,
        default=CHECK_TIMEOUT_S,
        metavar="SECONDS",
        help="stop the check, and its container, after this long; exit 1 "
        f"(default {CHECK_TIMEOUT_S:.0f})",
    )
    _add_json(smoke)
    smoke.set_defaults(handler=cmd_smoke)

    inspect = commands.add_parser(
        "inspect",
        help="report whether a wheel can work on a target",
        description="Read any wheel (ours, PyPI's, anyone's) and compare its architecture, "
        "manylinux tag, Python tag, needed CUDA/cuDNN/TensorRT libraries and "
        "onnxruntime execution providers with the target. Exit 1 if incompatible.",
    )
    inspect.add_argument("wheel", type=Path, help="path to a .whl file")
    inspect.add_argument("-t", "--target", required=True, help="target name or alias")
    _add_json(inspect)
    inspect.set_defaults(handler=cmd_inspect)
    cli_publish.add_commands(commands)
    cli_pipeline.add_commands(commands)
    return parser


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print a versioned JSON document instead of a table"
    )


def _add_job_arguments(parser: argparse.ArgumentParser) -> None:
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
        type=_positive_int,
        metavar="N",
        help="CPUs of the builder (default: FARM_BUILDER_CPUS or this machine)",
    )
    parser.add_argument(
        "--builder-memory",
        type=_positive_float,
        metavar="GIB",
        help="memory of the builder in GiB (default: FARM_BUILDER_MEMORY_GIB or this machine)",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be above 0")
    return value


# --- commands -----------------------------------------------------------------


def cmd_targets(args: argparse.Namespace, catalog: Catalog) -> int:
    entries = sorted(catalog.targets.values(), key=lambda entry: entry.model.name)
    if args.json:
        console.print_json(
            {
                "schema_version": CATALOG_SCHEMA_VERSION,
                "targets": [
                    {**entry.model.model_dump(mode="json"), "file": display(entry.path)}
                    for entry in entries
                ],
            }
        )
        return 0
    rows = []
    for entry in entries:
        t = entry.model
        rows.append(
            [
                t.name,
                ", ".join(t.aliases),
                t.jetpack or "-",
                f"{t.os.distro} {t.os.release}",
                t.os.glibc,
                ", ".join(t.python),
                t.cuda.version if t.cuda else "-",
                t.cudnn.version if t.cudnn else "-",
                t.tensorrt.version if t.tensorrt else "-",
                ";".join(t.cuda.architectures) if t.cuda else "-",
                t.base_image.pinned,
            ]
        )
    console.print_table(
        "targets",
        [
            "target",
            "aliases",
            "JetPack",
            "OS",
            "glibc",
            "Python",
            "CUDA",
            "cuDNN",
            "TensorRT",
            "SM",
            "base image",
        ],
        rows,
    )
    return 0


def cmd_recipes(args: argparse.Namespace, catalog: Catalog) -> int:
    documents = [_recipe_summary(catalog, name) for name in sorted(catalog.recipes)]
    if args.json:
        console.print_json({"schema_version": CATALOG_SCHEMA_VERSION, "recipes": documents})
        return 0
    rows = [
        [
            doc["name"],
            doc["build"],
            f"{doc['versions'][-1]} .. {doc['versions'][0]}",
            ", ".join(f"{t}={v}" for t, v in doc["default_versions"].items() if v),
        ]
        for doc in documents
    ]
    console.print_table("recipes", ["package", "build", "versions", "default per target"], rows)
    return 0


def _recipe_summary(catalog: Catalog, name: str) -> dict[str, Any]:
    entry = catalog.recipes[name]
    recipe = entry.model
    defaults: dict[str, str | None] = {}
    for target_name, target in sorted(catalog.targets.items()):
        try:
            defaults[target_name] = select(entry, target.model).version
        except IncompatibleError:
            defaults[target_name] = None
    return {
        "name": recipe.name,
        "description": recipe.description,
        "build": recipe.build.kind,
        "versions": recipe.sorted_versions(),
        "needs": list(recipe.needs),
        "default_versions": defaults,
        "file": display(entry.path),
    }


def cmd_plan(args: argparse.Namespace, catalog: Catalog) -> int:
    job = plan_from_args(args, catalog)
    if args.json:
        console.print_json(plan_document([job]))
        return 0
    data = job.to_json()
    rows = [[key, _plain(value)] for key, value in data.items() if key != "build_command"]
    rows.append(["build_command", " ".join(data["build_command"])])
    console.print_table(
        f"plan: {data['package']} {data['version']} for {data['target']}", ["field", "value"], rows
    )
    return 0


def _plain(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_plain(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "-"
    return "-" if value is None else str(value)


def cmd_render(args: argparse.Namespace, catalog: Catalog) -> int:
    job = plan_from_args(args, catalog)
    if args.output is None:
        console.print_text(job.dockerfile)
        return 0
    try:
        args.output.write_text(job.dockerfile, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror}") from None
    console.stderr.print(f"wrote {args.output} (build key {job.build_key[:12]})")
    return 0


def cmd_doctor(args: argparse.Namespace, catalog: Catalog) -> int:
    targets = [entry.model for entry in catalog.targets.values()]
    checks = run_checks(cache_dir(), targets=targets)
    failed = any(check.status == "fail" for check in checks)
    if args.json:
        console.print_json(
            {
                "schema_version": CATALOG_SCHEMA_VERSION,
                "ok": not failed,
                "checks": [check.to_json() for check in checks],
            }
        )
    else:
        for check in checks:
            console.print_check(check.status, check.name, check.detail, check.fix)
    return EXIT_ENVIRONMENT if failed else 0


def cmd_repair(args: argparse.Namespace, catalog: Catalog) -> int:
    target = catalog.target(args.target).model
    if not args.wheel.is_file():
        raise UsageError(f"{args.wheel}: no such wheel file")
    engine = preflight(target.platform, {"--output-dir": args.output_dir})
    with console.section("base_image", f"base image {target.base_image.pinned}") as line:
        ensure_base_image(target, engine, cache_dir(), line)
    with console.section("repair", f"repairing {args.wheel.name} for {target.name}") as line:
        recipe = catalog.recipe_for_wheel(args.wheel.name)
        packages = recipe.model.for_target(target.name).build.target_packages() if recipe else ()
        repaired = run_repair(
            args.wheel, target, target.default_python, engine, args.output_dir, line, packages
        )
    _report_repair(repaired, args.json)
    return 0


def _report_repair(repaired: RepairedWheel, as_json: bool) -> None:
    """Sizes and what the wheel takes from the target on stderr; the result on stdout."""
    console.info(
        f"repaired in {repaired.duration_s:.1f} s: {repaired.size_before:,} -> "
        f"{repaired.size_after:,} bytes; from the target: "
        f"{', '.join(repaired.external_libs) or 'nothing beyond manylinux'}"
    )
    if as_json:
        console.print_json(
            {
                "schema_version": BUILD_SCHEMA_VERSION,
                "wheel": str(repaired.wheel),
                "size_before": repaired.size_before,
                "size_after": repaired.size_after,
                "external_libs": list(repaired.external_libs),
                "duration_s": round(repaired.duration_s, 1),
            }
        )
    else:
        console.print_text(f"{repaired.wheel}\n")


def cmd_smoke(args: argparse.Namespace, catalog: Catalog) -> int:
    target = catalog.target(args.target).model
    if not args.wheel.is_file():
        raise UsageError(f"{args.wheel}: no such wheel file")
    smoke = smoke_for_wheel(catalog, args.wheel.name)
    expected = tuple(args.expect_provider) or expected_providers(smoke, target)
    record_dir = args.output_dir or args.wheel.parent
    engine = preflight(target.platform, {"the smoke record's directory": record_dir})
    with console.section("base_image", f"base image {target.base_image.pinned}") as line:
        ensure_base_image(target, engine, cache_dir(), line)
    with console.section("smoke", f"smoke test of {args.wheel.name} on {target.name}") as line:
        report = run_smoke(
            args.wheel,
            target,
            target.default_python,
            smoke,
            engine,
            expect_providers=expected,
            device=args.device,
            record_dir=record_dir,
            on_line=line,
            timeout=args.timeout,
        )
    return _report_smoke(report, args.json)


def _report_smoke(report: SmokeReport, as_json: bool) -> int:
    if as_json:
        console.print_json(report.to_json())
    else:
        for check in report.checks:
            console.print_check(_check_status(check), check["name"], check["detail"], None)
    return _smoke_verdict(report)


def _check_status(check: dict[str, Any]) -> str:
    if check.get("skipped"):
        return "skip"
    return "ok" if check["ok"] else "fail"


def _smoke_verdict(report: SmokeReport) -> int:
    """The outcome on stderr, the failed check named; the exit code."""
    console.info(
        f"smoke test {'passed' if report.passed else 'FAILED'} in "
        f"{report.duration_s:.1f} s (environment {report.environment})"
    )
    failure = report.first_failure()
    if failure is None:
        return 0
    console.error(f"smoke check {failure['name']} failed on {report.target}: {failure['detail']}")
    return 1


def cmd_inspect(args: argparse.Namespace, catalog: Catalog) -> int:
    target = catalog.target(args.target).model
    if not args.wheel.is_file():
        raise UsageError(f"{args.wheel}: no such wheel file")
    report = inspect_wheel(args.wheel, target, wheel_providers(catalog, args.wheel.name, target))
    if args.json:
        console.print_json(report.to_json())
    else:
        verdict = "compatible" if report.compatible else "INCOMPATIBLE"
        console.print_text(f"{report.wheel} on {target.name}: {verdict}\n")
        console.print_text(f"  tags: {', '.join(report.tags)}\n")
        console.print_text(f"  providers: {', '.join(report.providers) or '-'}\n")
        for problem in report.problems:
            console.print_text(f"  problem: {problem}\n")
        for note in report.notes:
            console.print_text(f"  note: {note}\n")
        if report.provenance is not None:
            lines = _provenance_lines(report.provenance)
            console.print_text("".join(f"  provenance: {line}\n" for line in lines))
    return 0 if report.compatible else 1


def _provenance_lines(record: dict[str, Any]) -> list[str]:
    """A wheel's provenance as lines; a record of another schema as it is."""
    try:
        return provenance_lines(record)
    except (KeyError, TypeError, AttributeError):
        return [json.dumps(record, sort_keys=True)]


# --- entry points ---------------------------------------------------------------

Handler = Callable[[argparse.Namespace, Catalog], int]
DEBUG_ENV = "FARM_DEBUG"  # set: unexpected exceptions show their traceback


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    as_json = bool(getattr(args, "json", False))
    console.begin_command()
    with signals_raise():
        try:
            catalog = load_catalog(catalog_dirs(args.recipes))
            return handler(args, catalog)
        except FarmError as exc:
            return _failed(exc.message, exc.hint, exc.exit_code, as_json)
        except OSError as exc:  # the file system said no where no stage expected it
            fault = host_fault(exc)
            return _failed(fault.message, fault.hint, fault.exit_code, as_json)
        except KeyboardInterrupt:
            return _stopped(signal.SIGINT, as_json)
        except Interrupted as exc:
            return _stopped(exc.signum, as_json)
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            return _failed(
                f"internal error: {type(exc).__name__}: {exc}",
                f"rerun with {DEBUG_ENV}=1 to see where, and report it",
                EXIT_FAILURE,
                as_json,
            )


def _failed(message: str, hint: str | None, code: int, as_json: bool) -> int:
    """The error line (and hint) on stderr; with --json, the error document unless one
    was printed already."""
    console.error(message, hint)
    if as_json and not console.printed_json():
        console.print_json(error_document(message, hint, code))
    return code


def _stopped(signum: int, as_json: bool) -> int:
    """After a signal unwound every stage (children stopped, containers removed, lock freed)."""
    doing = console.activity()
    name = signal.Signals(signum).name
    message = f"stopped by {name}" + (f" while {doing}" if doing else "")
    console.error(message)
    if as_json and not console.printed_json():
        console.print_json(error_document(message, None, 128 + signum))
    return 128 + signum


def entry_point() -> None:
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`farm plan ... | head`): stop quietly, as the Python docs advise.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    sys.exit(code)
