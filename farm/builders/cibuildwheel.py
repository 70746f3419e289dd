"""cibuildwheel builds: the package's own ``[tool.cibuildwheel]`` settings, run by cibuildwheel.

cibuildwheel (a pinned dependency of the farm) runs on the build machine and builds in a
container of an image the farm derives from the target's, under QEMU for another
architecture. This module plans it: the derived image's Dockerfile, the cibuildwheel
command and the options the farm owns; :mod:`farm.cibw` runs them.

What cibuildwheel expects of a manylinux image, read from its ``platforms/linux.py`` and
``oci_container.py`` (4.3):

* ``/opt/python/<tag>-<tag>/bin/python`` and ``pip`` for the build identifier's Python
  (``check_all_python_exist``; ``which python`` and ``which pip`` must resolve there once
  that ``bin`` is first on PATH);
* ``build`` installed in it for the default build frontend (``python -m build``), and
  ``virtualenv`` for the test step (it pip-installs one under its own constraints; the
  same pin is installed ahead, so that step needs no download);
* ``/opt/python/cp39-cp39/bin/python``: ``OCIContainer.UTILITY_PYTHON``, a hard-coded
  interpreter for its glob and environment one-liners (any Python 3 serves);
* ``bash``, ``which``, ``tar`` and ``mktemp``.

Options the farm owns, whatever the package says: which wheel (the target's Python and
architecture), the image, the container engine (farm's labels, the host's CA bundle and
proxy, no mount of the host's root) and the repair step. cibuildwheel's own repair is off:
the farm's repair stage runs auditwheel in the target image with the target's manylinux
tag and excludes the libraries the target provides, which cibuildwheel's default
``auditwheel repair`` would graft into the wheel.
"""

from __future__ import annotations

import shlex
from importlib import metadata, resources
from typing import Any

from farm.errors import IncompatibleError
from farm.jobspec import JobSpec
from farm.models import Build, CibuildwheelBuild
from farm.resources import BuilderResources, Parallelism
from farm.sources import archive_file_name

DISTRIBUTION = "cibuildwheel"
UTILITY_PYTHON_DIR = "/opt/python/cp39-cp39"  # OCIContainer.UTILITY_PYTHON's directory
# What cibuildwheel's test step and default build frontend need in the build interpreter.
FRONTEND_TOOLS = ("build", "virtualenv")
OUTPUT_DIR = "wheels"


def _settings(build: Build) -> CibuildwheelBuild:
    if not isinstance(build, CibuildwheelBuild):  # pragma: no cover - the lookup guarantees it
        raise TypeError(f"the cibuildwheel driver cannot build kind {build.kind!r}")
    return build


def version() -> str:
    return metadata.version(DISTRIBUTION)


def python_tag(python: str) -> str:
    return "cp" + python.replace(".", "")


def identifier(spec: JobSpec) -> str:
    """The one build identifier of a job: the target's Python and architecture."""
    return f"{python_tag(spec.python)}-manylinux_{spec.target.arch}"


def interpreter_dir(python: str) -> str:
    tag = python_tag(python)
    return f"/opt/python/{tag}-{tag}"


def frontend_requirements(python: str) -> list[str]:
    """``build`` and ``virtualenv`` pinned as cibuildwheel pins them for this Python."""
    name = f"constraints-python{python.replace('.', '')}.txt"
    constraints = resources.files(DISTRIBUTION) / "resources" / name
    if not constraints.is_file():
        raise IncompatibleError(
            f"cibuildwheel {version()} builds no CPython {python} wheels",
            hint="choose a target or --python that cibuildwheel supports, or kind: pep517",
        )
    pins = {}
    for line in constraints.read_text(encoding="utf-8").splitlines():
        name_part, _, pinned = line.partition("==")
        if name_part.strip() in FRONTEND_TOOLS and pinned:
            pins[name_part.strip()] = f"{name_part.strip()}=={pinned.strip()}"
    return [pins[tool] for tool in FRONTEND_TOOLS if tool in pins]


def parallelism(build: Build, resources: BuilderResources) -> Parallelism:
    return Parallelism(jobs=resources.cpus, nvcc_threads=1)


def sdist_name(spec: JobSpec) -> str:
    """The sdist's file name, as cibuildwheel is given it (it builds ``*.tar.gz`` files)."""
    return archive_file_name(spec.source_ref)


def command(spec: JobSpec, *, sdist: str, output: str, python: str = "python") -> list[str]:
    """The cibuildwheel invocation on the build machine."""
    return [
        python,
        "-m",
        DISTRIBUTION,
        "--platform",
        "linux",
        "--archs",
        spec.target.arch,
        "--output-dir",
        output,
        sdist,
    ]


def build_argv(spec: JobSpec, *, jobs: str, nvcc_threads: str) -> list[str]:
    return command(spec, sdist=sdist_name(spec), output=OUTPUT_DIR)


def options_env(spec: JobSpec, image: str) -> dict[str, str]:
    """The cibuildwheel options the farm sets; everything else is the package's own."""
    settings = _settings(spec.recipe.build)
    env = {
        "CIBW_BUILD": identifier(spec),
        f"CIBW_MANYLINUX_{spec.target.arch.upper()}_IMAGE": image,
        "CIBW_REPAIR_WHEEL_COMMAND_LINUX": "",  # the farm's repair stage does it
        "CIBW_BUILD_VERBOSITY": "1",  # the compiler's output in build.log
    }
    if settings.environment:
        env["CIBW_ENVIRONMENT_LINUX"] = " ".join(
            f"{k}={v}" for k, v in settings.environment.items()
        )
        env["CIBW_INHERIT"] = "environment-linux: append"
    if settings.before_all is not None:
        env["CIBW_BEFORE_ALL_LINUX"] = settings.before_all
    return env


def container_engine(create_args: list[str]) -> str:
    """cibuildwheel's container-engine option: docker, with these ``docker create`` options,
    and without its default mount of the host's root file system at /host."""
    quoted = " ".join(shlex.quote(arg) for arg in create_args)
    return f"docker; create_args: {quoted}; disable_host_mount: true"


def template_context(spec: JobSpec) -> dict[str, Any]:
    settings = _settings(spec.recipe.build)
    return {
        "venv": interpreter_dir(spec.python),
        "utility_python_dir": UTILITY_PYTHON_DIR,
        "system_packages": list(settings.system_packages),
        "frontend_requirements": frontend_requirements(spec.python),
        "cibuildwheel_version": version(),
        "identifier": identifier(spec),
    }
