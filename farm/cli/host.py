"""``farm doctor``: can this machine build for the targets, and the fix for what not."""

from __future__ import annotations

import argparse
from typing import Any

from farm import console
from farm.catalog import Catalog
from farm.cli._shared import add_json
from farm.doctor import run_checks
from farm.errors import EXIT_ENVIRONMENT, EXIT_OK
from farm.schemas import versioned
from farm.settings import Settings


def add_commands(commands: Any) -> None:
    doctor = commands.add_parser(
        "doctor",
        help="check that this machine can build for the targets",
        description="Check the docker engine, BuildKit, QEMU emulation, disk and memory; every "
        "failed check prints the exact fix. Exit 3 when a check fails.",
    )
    add_json(doctor)
    doctor.set_defaults(handler=cmd_doctor)


def cmd_doctor(args: argparse.Namespace, catalog: Catalog, settings: Settings) -> int:
    checks = run_checks(
        settings.cache_dir,
        engine_choice=settings.engine,
        resources=settings.builder_resources(),
        targets=[entry.model for entry in catalog.targets.values()],
    )
    failed = any(check.status == "fail" for check in checks)
    if args.json:
        document = {"ok": not failed, "checks": [check.to_json() for check in checks]}
        console.print_json(versioned("doctor", document))
    else:
        for check in checks:
            console.print_check(check.status, check.name, check.detail, check.fix)
    return EXIT_ENVIRONMENT if failed else EXIT_OK
