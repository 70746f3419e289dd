"""PEP 517 packages: ``pip wheel`` of the source tree with the target's own Python.

pip builds in an isolated environment with the build requirements the
project's ``pyproject.toml`` declares, exactly as a user's ``pip install``
from an sdist would. Emulated, that Python is the target's, under QEMU; cross,
it is crossenv's cross-python on the build platform, which reports the
target's platform and sysconfig (compiler, include dirs, extension suffix) so
the same ``pip wheel`` produces a target wheel with native-speed compilers.
"""

from __future__ import annotations

from typing import Any

from farm.builders.cmake_cross import SYSROOT, TOOLCHAIN_FILE, toolchain_file
from farm.jobspec import JobSpec
from farm.models import Build, Pep517Build
from farm.resources import BuilderResources, Parallelism

VENV = "/opt/farm/venv"
SOURCE_DIR = "/src/package"
WHEEL_DIR = "/farm/wheels"
# The cross strategy: crossenv's environment (its cross-python runs on the build platform but
# reports the target's platform and sysconfig), the build-platform venv it is made from, and
# where the target image is copied as the sysroot.
CROSS_VENV = "/opt/farm/cross"
BUILD_VENV = "/opt/farm/build"
CROSSENV_REQUIREMENT = "crossenv==1.6.2"


def _settings(build: Build) -> Pep517Build:
    if not isinstance(build, Pep517Build):  # pragma: no cover - the lookup guarantees it
        raise TypeError(f"the pep517 driver cannot build kind {build.kind!r}")
    return build


def parallelism(build: Build, resources: BuilderResources) -> Parallelism:
    # C compilers of small extensions take little memory: one job per CPU (MAKEFLAGS).
    return Parallelism(jobs=resources.cpus, nvcc_threads=1)


def build_argv(spec: JobSpec, *, jobs: str, nvcc_threads: str) -> list[str]:
    settings = _settings(spec.recipe.build)
    python = f"{CROSS_VENV}/cross/bin/python" if spec.strategy == "cross" else f"{VENV}/bin/python"
    isolation = (
        ["--no-build-isolation"]
        if spec.strategy == "cross" and settings.cross_build_requires
        else []
    )
    return [
        python,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        *isolation,
        "--wheel-dir",
        WHEEL_DIR,
        *settings.pip_args,
        *_what(spec),
    ]


def _platform_tags(glibc: str, arch: str) -> list[str]:
    """The target's own platform tag, then every PEP 600 tag its glibc admits from 2.17 up.

    crossenv's pip cannot check the target's glibc and architecture itself (it
    runs on the build machine), so it is told which wheels the target takes:
    requirements such as cffi then come as wheels, not as sources that would
    need the target's development headers. ``linux_<arch>`` is what builds are
    tagged with before repair (scikit-build-core takes the first such tag).
    """
    major, minor = (int(part) for part in glibc.split(".")[:2])
    return [
        f"linux_{arch}",
        f"manylinux2014_{arch}",
        *(f"manylinux_{major}_{m}_{arch}" for m in range(17, minor + 1)),
    ]


def _what(spec: JobSpec) -> list[str]:
    """The source tree, or for an sdist the pinned requirement built from source."""
    source = spec.recipe.source
    if source.kind == "sdist":
        return ["--no-binary", source.project, source.ref_for(spec.version)]
    return [SOURCE_DIR]


def template_context(spec: JobSpec) -> dict[str, Any]:
    settings = _settings(spec.recipe.build)
    context: dict[str, Any] = {
        "venv": VENV,
        "source_dir": SOURCE_DIR,
        "system_packages": list(settings.system_packages),
    }
    if spec.strategy == "cross":
        context.update(
            venv=CROSS_VENV,
            build_venv=BUILD_VENV,
            sysroot=SYSROOT,
            crossenv_requirement=CROSSENV_REQUIREMENT,
            crossenv_platform_tags=_platform_tags(spec.target.os.glibc, spec.target.arch),
            cross_build_requires=list(settings.cross_build_requires),
            toolchain_path=TOOLCHAIN_FILE,
            toolchain_lines=toolchain_file(spec.target, SYSROOT).splitlines(),
        )
    return context
