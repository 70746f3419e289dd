"""``farm targets``, ``farm recipes``, ``farm plan`` and ``farm render``: the catalog and
the jobs it plans; nothing runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from farm import console, wheels
from farm.catalog import Catalog, display
from farm.cli._shared import add_job_arguments, add_json, job_from_args
from farm.compat import recipe_summary
from farm.errors import EXIT_OK, UsageError
from farm.plan import plan_document
from farm.schemas import versioned
from farm.settings import Settings


def add_commands(commands: Any) -> None:
    targets = commands.add_parser(
        "targets",
        help="list the targets",
        description="List the targets with their JetPack, CUDA, cuDNN, TensorRT, Python and glibc.",
    )
    add_json(targets)
    targets.set_defaults(handler=cmd_targets)

    recipes = commands.add_parser(
        "recipes",
        help="list the package recipes",
        description="List the package recipes, their versions and "
        "the version each target gets by default.",
    )
    add_json(recipes)
    recipes.set_defaults(handler=cmd_recipes)

    plan = commands.add_parser(
        "plan",
        help="show the build job for a package and target",
        description="Resolve version and Python by the recipe's rules, "
        "size parallelism from the builder's memory and "
        "print the job. Runs nothing.",
    )
    add_job_arguments(plan)
    add_json(plan)
    plan.set_defaults(handler=cmd_plan)

    render = commands.add_parser(
        "render",
        help="print the Dockerfile for a job",
        description="Print the Dockerfile rendered for the job that `farm plan` shows.",
    )
    add_job_arguments(render)
    render.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write to FILE instead of standard output"
    )
    render.set_defaults(handler=cmd_render)

    lock = commands.add_parser(
        "lock",
        help="pin the Debian packages a build installs into the target",
        description="Ask apt, in the target's base image, which files installing the "
        "package's target packages (a cross build's sysroot packages, or its system packages) "
        "fetches, and write them with version, pool path and sha256 to the recipe's "
        "package_lock file (default locks/RECIPE.TARGET.yaml beside the recipe). Builds and "
        "repairs then install exactly those files, checked again, without the archive.",
    )
    lock.add_argument("package", help="package recipe name, e.g. onnxruntime-gpu")
    lock.add_argument("-t", "--target", required=True, help="target name or alias")
    add_json(lock)
    lock.set_defaults(handler=cmd_lock)


TARGET_COLUMNS = (
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
)


def cmd_targets(args: argparse.Namespace, catalog: Catalog, settings: Settings) -> int:
    entries = sorted(catalog.targets.values(), key=lambda entry: entry.model.name)
    if args.json:
        targets = [
            {**entry.model.model_dump(mode="json"), "file": display(entry.path)}
            for entry in entries
        ]
        console.print_json(versioned("targets", {"targets": targets}))
        return EXIT_OK
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
    console.print_table("targets", TARGET_COLUMNS, rows)
    return EXIT_OK


def cmd_recipes(args: argparse.Namespace, catalog: Catalog, settings: Settings) -> int:
    documents = [recipe_summary(catalog, name) for name in sorted(catalog.recipes)]
    if args.json:
        console.print_json(versioned("recipes", {"recipes": documents}))
        return EXIT_OK
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
    return EXIT_OK


def cmd_plan(args: argparse.Namespace, catalog: Catalog, settings: Settings) -> int:
    job = job_from_args(args, catalog, settings)
    if args.json:
        console.print_json(plan_document([job]))
        return EXIT_OK
    data = job.to_json()
    rows = [[key, _plain(value)] for key, value in data.items() if key != "build_command"]
    rows.append(["build_command", " ".join(data["build_command"])])
    console.print_table(
        f"plan: {data['package']} {data['version']} for {data['target']}", ["field", "value"], rows
    )
    return EXIT_OK


def _plain(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_plain(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "-"
    return "-" if value is None else str(value)


def cmd_render(args: argparse.Namespace, catalog: Catalog, settings: Settings) -> int:
    job = job_from_args(args, catalog, settings)
    if args.output is None:
        console.print_text(job.dockerfile)
        return EXIT_OK
    try:
        args.output.write_text(job.dockerfile, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror}") from None
    console.stderr.print(f"wrote {args.output} (build key {job.build_key[:12]})")
    return EXIT_OK


def cmd_lock(args: argparse.Namespace, catalog: Catalog, settings: Settings) -> int:
    written = wheels.lock(catalog, settings, args.package, args.target, console.section)
    lock = written.lock
    if args.json:
        document = {
            "path": str(written.path),
            "changed": written.changed,
            **lock.model_dump(mode="json"),
        }
        console.print_json(versioned("lock", document))
    else:
        state = "written" if written.changed else "unchanged"
        console.print_text(
            f"{display(written.path)}: {len(lock.packages)} packages for "
            f"{', '.join(lock.requested)} on {lock.target} ({state})\n"
        )
    return EXIT_OK
