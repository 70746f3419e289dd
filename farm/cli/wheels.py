"""``farm repair``, ``farm smoke`` and ``farm inspect``: any wheel against a target."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from farm import console, wheels
from farm.catalog import Catalog
from farm.cli._shared import add_json, positive_float
from farm.errors import EXIT_FAILURE, EXIT_OK
from farm.provenance import provenance_lines
from farm.settings import Settings
from farm.smoke import CHECK_TIMEOUT_S, check_status


def add_commands(commands: Any) -> None:
    _add_repair(commands)
    _add_smoke(commands)
    inspect = commands.add_parser(
        "inspect",
        help="report whether a wheel can work on a target",
        description="Read any wheel (ours, PyPI's, anyone's) and compare its architecture, "
        "manylinux tag, Python tag, needed CUDA/cuDNN/TensorRT libraries and "
        "onnxruntime execution providers with the target. Exit 1 if incompatible.",
    )
    _add_wheel_and_target(inspect)
    add_json(inspect)
    inspect.set_defaults(handler=cmd_inspect)


def _add_wheel_and_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("wheel", type=Path, help="path to a .whl file")
    parser.add_argument("-t", "--target", required=True, help="target name or alias")


def _add_repair(commands: Any) -> None:
    repair = commands.add_parser(
        "repair",
        help="auditwheel-repair a wheel to the target's manylinux tag",
        description="Run auditwheel repair inside the target image (QEMU on x86_64) with the "
        "target's provided libraries excluded and symbols stripped, then verify the "
        "result with auditwheel show --json. Prints sizes before and after.",
    )
    _add_wheel_and_target(repair)
    repair.add_argument(
        "--output-dir",
        type=Path,
        metavar="DIR",
        default=Path("wheelhouse"),
        help="where the repaired wheel goes (default: ./wheelhouse)",
    )
    add_json(repair)
    repair.set_defaults(handler=cmd_repair)


def _add_smoke(commands: Any) -> None:
    smoke = commands.add_parser(
        "smoke",
        help="install a wheel in a fresh target container and test it",
        description="Install the wheel with its dependencies in a clean virtual environment of "
        "a fresh target-platform container (QEMU on x86_64), then run the smoke test "
        "of its recipe: for onnxruntime, providers compiled in and a real session "
        "compared with numpy. Exit 1 naming the failed check.",
    )
    _add_wheel_and_target(smoke)
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
        type=positive_float,
        default=CHECK_TIMEOUT_S,
        metavar="SECONDS",
        help="stop the check, and its container, after this long; exit 1 "
        f"(default {CHECK_TIMEOUT_S:.0f})",
    )
    add_json(smoke)
    smoke.set_defaults(handler=cmd_smoke)


def cmd_repair(args: argparse.Namespace, catalog: Catalog, settings: Settings) -> int:
    repaired = wheels.repair(
        catalog, settings, args.wheel, args.target, args.output_dir, console.section
    )
    # Sizes and what the wheel takes from the target on stderr; the result on stdout.
    console.info(
        f"repaired in {repaired.duration_s:.1f} s: {repaired.size_before:,} -> "
        f"{repaired.size_after:,} bytes; from the target: "
        f"{', '.join(repaired.external_libs) or 'nothing beyond manylinux'}"
    )
    if args.json:
        console.print_json(repaired.to_json())
    else:
        console.print_text(f"{repaired.wheel}\n")
    return EXIT_OK


def cmd_smoke(args: argparse.Namespace, catalog: Catalog, settings: Settings) -> int:
    ask = wheels.SmokeAsk(
        expect_providers=tuple(args.expect_provider),
        device=args.device,
        record_dir=args.output_dir,
        timeout=args.timeout,
    )
    report = wheels.smoke(catalog, settings, args.wheel, args.target, ask, console.section)
    if args.json:
        console.print_json(report.to_json())
    else:
        for check in report.checks:
            console.print_check(check_status(check), check["name"], check["detail"], None)
    console.info(
        f"smoke test {'passed' if report.passed else 'FAILED'} in "
        f"{report.duration_s:.1f} s (environment {report.environment})"
    )
    failure = report.first_failure()
    if failure is None:
        return EXIT_OK
    console.error(f"smoke check {failure['name']} failed on {report.target}: {failure['detail']}")
    return EXIT_FAILURE


def cmd_inspect(args: argparse.Namespace, catalog: Catalog, settings: Settings) -> int:
    report = wheels.inspect(catalog, args.wheel, args.target)
    if args.json:
        console.print_json(report.to_json())
        return EXIT_OK if report.compatible else EXIT_FAILURE
    verdict = "compatible" if report.compatible else "INCOMPATIBLE"
    console.print_text(f"{report.wheel} on {report.target}: {verdict}\n")
    console.print_text(f"  tags: {', '.join(report.tags)}\n")
    console.print_text(f"  providers: {', '.join(report.providers) or '-'}\n")
    for problem in report.problems:
        console.print_text(f"  problem: {problem}\n")
    for note in report.notes:
        console.print_text(f"  note: {note}\n")
    if report.provenance is not None:
        lines = _provenance_lines(report.provenance)
        console.print_text("".join(f"  provenance: {line}\n" for line in lines))
    return EXIT_OK if report.compatible else EXIT_FAILURE


def _provenance_lines(record: dict[str, Any]) -> list[str]:
    """A wheel's provenance as lines; a record of another schema as it is."""
    try:
        return provenance_lines(record)
    except (KeyError, TypeError, AttributeError):
        return [json.dumps(record, sort_keys=True)]
