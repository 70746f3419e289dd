"""``farm build``: one planned job through the pipeline, or the commands it would run.

The runner (:mod:`farm.pipeline`) chains the stages; this module prepares what it
needs: the publish destination resolved before anything is built (a stopped
local registry ends the command before hours of compiling), the engine checked,
the state directory locked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm.baseimage import images_for, planned_commands
from farm.build import dry_run_commands
from farm.destinations import publish_target
from farm.doctor import preflight
from farm.engine import Engine, engine_for_dry_run
from farm.ledger import Ledger
from farm.pipeline import PipelineOptions, PipelineResult, PublishTarget, Runner, Section
from farm.plan import BuildJob
from farm.process import command_line
from farm.publish import credential_names, twine_argv
from farm.schemas import versioned
from farm.settings import Settings


@dataclass(frozen=True, kw_only=True)
class BuildAsk:
    """What ``farm build`` was asked beyond the job itself."""

    out_root: Path | None = None  # None: the settings' output directory
    publish: str | None = None  # a registry profile
    config_path: Path | None = None
    force: bool = False
    no_cache: bool = False
    install_check: bool = True


@dataclass(frozen=True, kw_only=True)
class BuildOutcome:
    result: PipelineResult
    duration_s: float

    def to_json(self) -> dict[str, Any]:
        entry = self.result.entry
        built, repaired = entry.wheel("build"), entry.wheel("repair")
        return versioned(
            "build",
            {
                "dry_run": False,
                **self.result.to_json(),
                "job_dir": entry.job_dir,
                "wheels": [built] if built else [],
                "repaired": [repaired] if repaired else [],
                "log": str(Path(entry.job_dir) / "build.log"),
                "duration_s": round(self.duration_s, 1),
            },
        )


@dataclass(frozen=True, kw_only=True)
class DryRun:
    job: BuildJob
    engine: Engine
    commands: list[str]

    def to_json(self) -> dict[str, Any]:
        return versioned(
            "build",
            {
                "dry_run": True,
                "engine": self.engine.describe(),
                "commands": self.commands,
                "job": self.job.to_json(),
            },
        )

    def header(self) -> str:
        """Comment lines: the base image, the strategy's images, the assembled CUDA stack
        and where the build command runs."""
        job, where = self.job, "in the container"
        if job.spec.recipe.build.kind == "cibuildwheel":
            where = "on this machine, building in a container of the image below"
        target = job.spec.target
        lines = [f"# base image: {target.base_image.pinned} ({target.platform})"]
        document = job.to_json()
        cross = document["cross"]
        if cross is not None:
            where = f"in the builder ({cross['build_platform']})"
            nvcc = f", CUDA {cross['nvcc']}" if cross["nvcc"] else ""
            lines.append(
                f"# strategy: cross; builder image {cross['builder_image']}, sysroot copied "
                f"from {cross['sysroot_image']}, compilers {cross['cc']} / {cross['cxx']}{nvcc}"
            )
        toolkit = document["cuda_toolkit"]
        if toolkit is not None and toolkit["from"] == "packages":
            lines.append(
                f"# CUDA {toolkit['release']}: stack {toolkit['name']} assembled from "
                f"{len(toolkit['packages'])} pinned packages into {toolkit['image']} "
                "(cached; `farm plan --json` lists them)"
            )
        lines.append(f"# {where}: {' '.join(job.build_command)}")
        return "".join(f"{line}\n" for line in lines)


def written_directories(settings: Settings, out_root: Path) -> dict[str, Path]:
    """The directories a pipeline writes, checked before it starts."""
    return {
        "--output-dir": out_root,
        "the state directory (FARM_STATE_DIR)": settings.state_dir,
        "the cache directory (FARM_CACHE_DIR)": settings.cache_dir,
    }


def _destination(job: BuildJob, settings: Settings, ask: BuildAsk) -> PublishTarget | None:
    if ask.publish is None:
        return None
    return publish_target(settings, ask.publish, ask.config_path, job.spec.target)


def build(
    job: BuildJob,
    settings: Settings,
    ask: BuildAsk,
    section: Section,
    say: Callable[[str], None],
) -> BuildOutcome:
    """The job through build, repair, inspect, smoke (and publish, install): what the ledger
    has already is skipped unless forced."""
    out_root = ask.out_root or settings.output_dir
    publish = _destination(job, settings, ask)
    target = job.spec.target
    engine = preflight(
        target.platform,
        settings.engine,
        settings.cache_dir,
        written_directories(settings, out_root),
        say,
    )
    ledger = Ledger(settings.state_dir)
    options = PipelineOptions(
        out_root=out_root,
        cache_dir=settings.cache_dir,
        mirrors=settings.mirrors,
        force=ask.force or ask.no_cache,
        no_cache=ask.no_cache,
        publish=publish,
        install_check=ask.install_check,
    )
    started = time.monotonic()
    with ledger.locked(f"farm build {job.spec.recipe.name} --target {target.name}"):
        result = Runner(job, engine, ledger, options, section, say).run()
    return BuildOutcome(result=result, duration_s=time.monotonic() - started)


def dry_run(job: BuildJob, settings: Settings, ask: BuildAsk) -> DryRun:
    """The exact commands ``build`` would run, secrets masked; nothing runs."""
    publish = _destination(job, settings, ask)
    engine = engine_for_dry_run(settings.engine)
    sources = images_for(job.spec.target, job.strategy, settings.cache_dir, settings.mirrors)
    commands = [command_line(argv, env) for argv, env in planned_commands(sources, engine)]
    out_root = ask.out_root or settings.output_dir
    commands += dry_run_commands(job, engine, out_root, ask.no_cache)
    if publish is not None:
        argv = twine_argv(publish.location, Path("WHEEL"))  # the wheel is named by the build
        commands.append(command_line(argv, credential_names(publish.credentials)))
    return DryRun(job=job, engine=engine, commands=commands)
