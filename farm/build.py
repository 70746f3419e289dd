"""The build stage: one planned job through BuildKit to wheels in an output directory.

Layout of a job's directory (``OUT/<package>/<target>/<version>-<key12>/``):

* ``Dockerfile``  the rendered Dockerfile that was built
* ``build.log``   everything BuildKit printed, secrets masked
* ``build.sh``    the commands, re-runnable by hand, secrets masked
* ``wheels/``     the wheels, present only after a successful build; ``build-info/``
                  beside them holds what the build recorded (``toolchain.txt``: the
                  compilers' versions, one ``label: version`` line each)
* ``build.json``  the result record (what ran, on what, result, duration)

BuildKit exports into a hidden partial directory that is renamed to
``wheels/`` only when the build succeeded and produced a wheel, so a failed
or interrupted build never leaves something that looks like a result.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm import cibw
from farm.builders import cibuildwheel as cibuildwheel_driver
from farm.cudastack import DEFAULT_MIRRORS, Mirrors
from farm.debs import DEBS_DIR, fetch_debs
from farm.engine import BuildRequest, Engine
from farm.errors import BuildFailed, FarmError, host_faults
from farm.models import CibuildwheelBuild
from farm.network import network_secrets, proxy_build_args
from farm.plan import BuildJob
from farm.process import Finished, command_line
from farm.records import write_record
from farm.render import package_lock
from farm.runner import EngineRunner
from farm.sources import prepare_context, stage_tree

TOOLCHAIN_RECORD = "build-info/toolchain.txt"  # written by dockerfiles/_reproducible.j2


@dataclass(frozen=True, kw_only=True)
class BuildResult:
    job_dir: Path
    wheels: tuple[Path, ...]
    log: Path
    duration_s: float
    command: tuple[str, ...]
    toolchain: dict[str, str]  # compiler label -> the version line it printed


def job_dir(job: BuildJob, out_root: Path) -> Path:
    spec = job.spec
    return out_root / spec.recipe.name / spec.target.name / f"{spec.version}-{job.build_key[:12]}"


def build_request(
    job: BuildJob, dockerfile: Path, output: Path, context: Path, no_cache: bool = False
) -> BuildRequest:
    return BuildRequest(
        no_cache=no_cache,
        dockerfile=dockerfile,
        context=context,
        platform=job.spec.target.platform,
        target_stage="wheels",
        output_dir=output,
        build_args={**job.build_args, **proxy_build_args()},
        secrets=network_secrets(),
    )


def dry_run_commands(
    job: BuildJob, engine: Engine, out_root: Path, no_cache: bool = False
) -> list[str]:
    directory = job_dir(job, out_root)
    if isinstance(job.spec.recipe.build, CibuildwheelBuild):
        return cibw.planned(job, engine, directory, no_cache)
    context = directory / "context"  # a scratch copy of the source tree, or the fetched source
    partial = directory / ".wheels.partial"
    request = build_request(job, directory / "Dockerfile", partial, context, no_cache)
    return [command_line(engine.build_argv(request), engine.env)]


def run_build(
    job: BuildJob,
    engine: Engine,
    out_root: Path,
    on_line: Callable[[str], None],
    cache: Path,
    *,
    no_cache: bool = False,
    mirrors: Mirrors = DEFAULT_MIRRORS,
) -> BuildResult:
    directory = job_dir(job, out_root)
    with host_faults(f"building {job.spec.recipe.name} {job.spec.version}", directory):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "Dockerfile").write_text(job.dockerfile, encoding="utf-8")
        return _build_in(directory, job, engine, on_line, (cache, mirrors), no_cache)


def _build_in(
    directory: Path,
    job: BuildJob,
    engine: Engine,
    on_line: Callable[[str], None],
    downloads: tuple[Path, Mirrors],
    no_cache: bool,
) -> BuildResult:
    log_path = directory / "build.log"
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix=".partial-", dir=directory) as partial,
        _context(job, directory, downloads, on_line) as context,
        EngineRunner(
            engine, "build", on_line, log_path=log_path, script_path=directory / "build.sh"
        ) as runner,
    ):
        try:
            command = _make_wheels(job, runner, (directory, context, Path(partial)), no_cache)
        except FarmError:
            _record(directory, job, engine, "failed", time.monotonic() - started, [])
            raise
        duration = time.monotonic() - started
        wheels = _publish_wheels(Path(partial) / "wheels", directory / "wheels", log_path)
    toolchain = read_toolchain(directory / "wheels")
    _record(directory, job, engine, "passed", duration, wheels, toolchain)
    return BuildResult(
        job_dir=directory,
        wheels=tuple(wheels),
        log=log_path,
        duration_s=duration,
        command=tuple(command),
        toolchain=toolchain,
    )


def read_toolchain(wheels: Path) -> dict[str, str]:
    """The compilers' versions the build recorded in ``build-info/toolchain.txt``."""
    path = wheels / TOOLCHAIN_RECORD
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return dict(
        (label.strip(), version.strip())
        for label, _, version in (line.partition(":") for line in lines)
        if version.strip()
    )


def _make_wheels(
    job: BuildJob, runner: EngineRunner, paths: tuple[Path, Path, Path], no_cache: bool
) -> list[str]:
    """BuildKit exports the wheels (or cibuildwheel writes them) into ``<partial>/wheels``;
    returns the command that made them. ``paths``: job directory, context, partial."""
    directory, context, partial = paths
    log_path = directory / "build.log"

    def failed(result: Finished) -> BuildFailed:
        return BuildFailed(
            f"build step failed: {result.failing_line()}; log: {log_path}",
            hint=f"the last lines of {log_path} show the failing command",
        )

    if isinstance(job.spec.recipe.build, CibuildwheelBuild):
        return cibw.run_cibuildwheel(
            job, runner, (directory, context, partial / "wheels"), no_cache, failed
        )
    request = build_request(job, directory / "Dockerfile", partial / "wheels", context, no_cache)
    runner.build(request, image=job.spec.target.base_image.pinned, failed=failed)
    return runner.engine.build_argv(request)


@contextlib.contextmanager
def _context(
    job: BuildJob, directory: Path, downloads: tuple[Path, Mirrors], on_line: Callable[[str], None]
) -> Any:
    """A scratch build context: a repository-kept source tree copied with fixed mtimes and
    modes (:func:`farm.sources.stage_tree`), else what :func:`farm.sources.prepare_context`
    fetched (archive, patches, dependencies)."""
    spec = job.spec
    with tempfile.TemporaryDirectory(prefix=".context-", dir=directory) as scratch:
        context = Path(scratch)
        if spec.context_dir is not None:
            stage_tree(spec.context_dir, context, spec.source_date_epoch)
        else:
            cache, mirrors = downloads
            prepare_context(
                spec.recipe, spec.recipe_path, spec.version, context, cache, on_line, mirrors
            )
        lock = package_lock(spec)
        if lock is not None:
            cache, mirrors = downloads
            fetch_debs(lock, context / DEBS_DIR, cache, mirrors, on_line)
        yield context


def _publish_wheels(exported: Path, final: Path, log_path: Path) -> list[Path]:
    found = sorted(exported.glob("*.whl")) if exported.is_dir() else []
    if not found:
        raise BuildFailed(f"the build succeeded but exported no wheel; see {log_path}")
    if final.exists():
        shutil.rmtree(final)
    exported.replace(final)
    return sorted(final.glob("*.whl"))


def _record(
    directory: Path,
    job: BuildJob,
    engine: Engine,
    result: str,
    duration: float,
    wheels: list[Path],
    toolchain: dict[str, str] | None = None,
) -> None:
    write_record(
        directory / "build.json",
        "build",
        result,
        duration,
        {
            "build_key": job.build_key,
            "package": job.spec.recipe.name,
            "version": job.spec.version,
            "target": job.spec.target.name,
            "platform": job.spec.target.platform,
            "engine": engine.describe(),
            "wheels": [wheel.name for wheel in wheels],
            "toolchain": toolchain or {},
            **_builder_record(job, directory / "build.log"),
        },
    )


def _builder_record(job: BuildJob, log: Path) -> dict[str, object]:
    """What a cibuildwheel build adds to its record: its version, and whether it ran the
    package's own tests (its log says)."""
    if not isinstance(job.spec.recipe.build, CibuildwheelBuild):
        return {}
    tests = log.is_file() and cibw.package_tests_ran(log)
    return {"cibuildwheel": cibuildwheel_driver.version(), "package_tests": tests}
