"""The build stage of a cibuildwheel job: the derived image, then cibuildwheel itself.

1. BuildKit builds the job's rendered Dockerfile (the target's image in cibuildwheel's
   layout, :mod:`farm.builders.cibuildwheel`) and tags it
   ``farm.local/cibw-<target>:<hash of the Dockerfile>`` in the engine.
2. cibuildwheel runs on this machine, through :meth:`farm.runner.EngineRunner.drive`, on the
   sdist the farm fetched and checked: it starts its container from that image (under QEMU
   for another architecture), builds the one wheel the job asks for and runs the package's
   own test settings. Its containers carry the runner's labels, so they are removed with
   the runner's own on any way out.

Both commands go to ``build.log`` and ``build.sh``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from farm.builders import cibuildwheel as driver
from farm.engine import BuildRequest, Engine
from farm.errors import FarmError
from farm.network import container_options, network_secrets, proxy_build_args
from farm.plan import BuildJob
from farm.process import Finished, command_line
from farm.runner import EngineRunner
from farm.sources import SOURCE_ARCHIVE

# What cibuildwheel prints when it starts the package's tests (logger.step).
TEST_STEP = "Testing wheel..."
ENGINE_BIN = "engine-bin"  # in the job directory: `docker` for cibuildwheel, when PATH lacks it


def image_reference(job: BuildJob) -> str:
    """The derived image's tag: named by the rendered Dockerfile, which names the base image."""
    key = hashlib.sha256(job.dockerfile.encode()).hexdigest()[:16]
    return f"farm.local/cibw-{job.spec.target.name}:{key}"


def image_request(job: BuildJob, directory: Path, context: Path, no_cache: bool) -> BuildRequest:
    return BuildRequest(
        dockerfile=directory / "Dockerfile",
        context=context,
        platform=job.spec.target.platform,
        tag=image_reference(job),
        build_args=proxy_build_args(),
        secrets=network_secrets(),
        use_registry_cache=False,
        no_cache=no_cache,
    )


def cibuildwheel_env(job: BuildJob, labels: list[str], engine_bin: Path | None) -> dict[str, str]:
    """The options the farm sets for cibuildwheel (the package's settings do the rest)."""
    env = driver.options_env(job.spec, image_reference(job))
    env["CIBW_CONTAINER_ENGINE_LINUX"] = driver.container_engine([*labels, *container_options()])
    if engine_bin is not None:
        env["PATH"] = f"{engine_bin}{os.pathsep}{os.environ.get('PATH', '')}"
    return env


def docker_on_path(engine: Engine, directory: Path) -> Path | None:
    """cibuildwheel runs ``docker`` from PATH: a directory holding the engine's client under
    that name when PATH would find another (or none); None when PATH finds the engine's."""
    found = shutil.which("docker")
    if found is not None and os.path.realpath(found) == os.path.realpath(engine.docker):
        return None
    engine_bin = directory / ENGINE_BIN
    engine_bin.mkdir(exist_ok=True)
    link = engine_bin / "docker"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(os.path.realpath(engine.docker))
    return engine_bin


def sdist_in(context: Path, job: BuildJob) -> Path:
    """The fetched archive under the sdist's own name: cibuildwheel builds ``*.tar.gz`` files."""
    sdist = context / driver.sdist_name(job.spec)
    if not sdist.exists():
        os.link(context / SOURCE_ARCHIVE, sdist)
    return sdist


def run_cibuildwheel(
    job: BuildJob,
    runner: EngineRunner,
    paths: tuple[Path, Path, Path],
    no_cache: bool,
    failed: Callable[[Finished], FarmError],
) -> list[str]:
    """Build the image, then the wheel into ``output``; returns the cibuildwheel command.
    ``paths``: the job directory, the context holding the fetched sdist, the output."""
    directory, context, output = paths
    with tempfile.TemporaryDirectory(prefix=".image-context-", dir=directory) as empty:
        runner.build(  # the Dockerfile copies nothing in
            image_request(job, directory, Path(empty), no_cache),
            image=job.spec.target.base_image.pinned,
            failed=failed,
        )
    argv = driver.command(
        job.spec, sdist=str(sdist_in(context, job)), output=str(output), python=sys.executable
    )
    env = cibuildwheel_env(job, runner.labels(), docker_on_path(runner.engine, directory))
    runner.drive(argv, env=env, failed=failed)
    return argv


def planned(job: BuildJob, engine: Engine, directory: Path, no_cache: bool) -> list[str]:
    """The two commands, for a dry run (labels as a runner of this process would give)."""
    image = engine.build_argv(image_request(job, directory, directory / "context", no_cache))
    argv = driver.command(
        job.spec,
        sdist=str(directory / "context" / driver.sdist_name(job.spec)),
        output=str(directory / "wheels"),
    )
    runner = EngineRunner(engine, "build", lambda line: None)
    env = cibuildwheel_env(job, runner.labels(), None)
    return [command_line(image, engine.env), command_line(argv, env)]


def package_tests_ran(log: Path) -> bool:
    """Whether cibuildwheel's log shows it running the package's own tests."""
    with log.open(encoding="utf-8", errors="replace") as lines:
        return any(TEST_STEP in line for line in lines)
