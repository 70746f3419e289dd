"""Dockerfiles rendered from ``dockerfiles/*.j2`` with jinja2.

Rendering is strict (an undefined name is an error, not an empty string) and
pure: the same job gives the same text byte for byte, which is what lets the
rendered Dockerfile feed the build key. Values that vary with the builder
(parallelism) stay BuildKit ``ARG``s so they never change the text.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from farm import __version__
from farm.builders import driver_for
from farm.cudastack import Mirrors
from farm.debs import LockedFiles, PackageLock, load_lock
from farm.errors import CatalogError
from farm.jobspec import JobSpec
from farm.models import STACK_HOME
from farm.paths import data_dir

JOBS_ARG = "FARM_JOBS"
NVCC_THREADS_ARG = "FARM_NVCC_THREADS"
_PLACEHOLDER = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*\}$")


def shell_join(argv: Iterable[str]) -> str:
    """Like :func:`shlex.join`, but ``${ARG}`` placeholders stay expandable."""
    return " ".join(f'"{arg}"' if _PLACEHOLDER.match(arg) else shlex.quote(arg) for arg in argv)


def shell_lines(argv: Sequence[str], indent: str = "    ") -> str:
    """:func:`shell_join` with each ``--option`` and its values on a continued line."""
    groups: list[list[str]] = []
    for arg in argv:
        if not groups or arg.startswith("--"):
            groups.append([])
        groups[-1].append(arg)
    return f" \\\n{indent}".join(shell_join(group) for group in groups)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(data_dir("dockerfiles")),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - the output is a Dockerfile, not HTML
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["shell_join"] = shell_join
    env.filters["shell_lines"] = shell_lines
    env.filters["shquote"] = shlex.quote
    return env


@dataclass(frozen=True, kw_only=True)
class ToolchainProbe:
    """A compiler whose version the build records: ``<command> --version | <line>``."""

    label: str
    command: str
    line: str = "head -n 1"


def toolchain_probes(spec: JobSpec) -> list[ToolchainProbe]:
    """The compilers a job's build runs: the C and C++ compilers (the cross ones for a cross
    build) and, on a CUDA target, nvcc."""
    target = spec.target
    cross = target.cross if spec.strategy == "cross" else None
    probes = [
        ToolchainProbe(label="cc", command=cross.cc if cross else "cc"),
        ToolchainProbe(label="c++", command=cross.cxx if cross else "c++"),
    ]
    home = target.cross_cuda_home if cross else target.cuda.home if target.cuda else None
    if home is not None:
        probes.append(
            ToolchainProbe(label="nvcc", command=f"{home}/bin/nvcc", line="grep -m 1 release")
        )
    return probes


def template_context(spec: JobSpec) -> dict[str, Any]:
    target = spec.target
    driver = driver_for(spec.recipe.build)
    placeholder_argv = driver.build_argv(
        spec, jobs=f"${{{JOBS_ARG}}}", nvcc_threads=f"${{{NVCC_THREADS_ARG}}}"
    )
    return {
        "farm_version": __version__,
        "package": spec.recipe.name,
        "version": spec.version,
        "python": spec.python,
        "target": target,
        "base_image": target.base_image.pinned,
        "source": spec.recipe.source,
        "source_ref": spec.source_ref,
        "jobs_arg": JOBS_ARG,
        "nvcc_threads_arg": NVCC_THREADS_ARG,
        "build_command": placeholder_argv,
        "strategy": spec.strategy,
        "cross": target.cross,
        "builder_image": target.cross.builder_image.pinned if target.cross else None,
        "cuda_stack_image": target.cuda_stack_image,
        "cuda_stack_home": STACK_HOME,
        "source_date_epoch": spec.source_date_epoch,
        "toolchain_probes": toolchain_probes(spec),
        "package_lock": package_lock(spec),
        **driver.template_context(spec),
    }


def package_lock(spec: JobSpec) -> PackageLock | None:
    """The pinned target packages of a job's build, if its recipe locks them."""
    build = spec.recipe.build
    name = getattr(build, "package_lock", None)
    if name is None:
        return None
    lock = load_lock(spec.recipe_path, name, build.target_packages())
    if lock.target != spec.target.name:
        raise CatalogError(
            spec.recipe_path,
            "build.package_lock",
            f"{name!r} pins packages for target {lock.target}, not {spec.target.name}",
        )
    return lock


def locked_files(spec: JobSpec, cache: Path, mirrors: Mirrors) -> LockedFiles | None:
    """A job's package lock with where its files come from, for stages that install them."""
    lock = package_lock(spec)
    return None if lock is None else LockedFiles(lock=lock, cache=cache, mirrors=mirrors)


def render_dockerfile(spec: JobSpec) -> str:
    build = spec.recipe.build
    template_name = build.dockerfile_for(spec.strategy)
    try:
        template = environment().get_template(template_name)
        return template.render(template_context(spec), template=template_name)
    except jinja2.TemplateNotFound:
        raise CatalogError(
            spec.recipe_path,
            "build.dockerfile",
            f"template {template_name!r} not found in {data_dir('dockerfiles')}",
        ) from None
    except jinja2.UndefinedError as exc:
        raise CatalogError(
            f"dockerfiles/{template_name}", None, f"template uses an undefined value: {exc.message}"
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        raise CatalogError(
            f"dockerfiles/{exc.name or template_name}",
            f"line {exc.lineno}",
            f"template syntax: {exc.message}",
        ) from None
