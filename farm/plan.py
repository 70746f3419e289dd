"""Planning: from a package, a target and the user's choices to build jobs.

A plan is pure data. It resolves the version and Python by the recipe's rules,
sizes parallelism from the builder's resources, renders the Dockerfile and
derives the build key; it runs nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from farm import __version__
from farm.builders import driver_for
from farm.catalog import Catalog, Entry, display
from farm.compat import select
from farm.errors import IncompatibleError
from farm.estimate import BuildEstimate, duration, estimate
from farm.jobspec import JobSpec
from farm.models import Recipe, Strategy, Target
from farm.render import JOBS_ARG, NVCC_THREADS_ARG, render_dockerfile
from farm.resources import BuilderResources, Parallelism
from farm.schemas import SCHEMA_VERSIONS
from farm.sources import source_digest, tree_digest

PLAN_SCHEMA_VERSION = SCHEMA_VERSIONS["plan"]


@dataclass(frozen=True, kw_only=True)
class BuildJob:
    """Everything a later stage needs to build, repair and test one wheel."""

    spec: JobSpec
    strategy: Strategy
    dockerfile: str
    build_key: str
    build_command: tuple[str, ...]
    parallelism: Parallelism
    resources: BuilderResources
    # How long the compile should take, from the recipe's measured build; None without one.
    estimate: BuildEstimate | None = None

    @property
    def build_args(self) -> dict[str, str]:
        """BuildKit ``--build-arg`` values; they never change the wheel, so not the key."""
        return {
            JOBS_ARG: str(self.parallelism.jobs),
            NVCC_THREADS_ARG: str(self.parallelism.nvcc_threads),
        }

    @property
    def emulation_warning(self) -> str | None:
        """A line said before an emulated CUDA compile starts: how long it should take."""
        spec = self.spec
        if self.strategy != "emulated" or not spec.recipe.compiles_cuda_for(spec.target):
            return None
        how_long = self.estimate.describe() if self.estimate else "hours (no measured build)"
        line = (
            f"{spec.recipe.name} {spec.version} for {spec.target.name} compiles CUDA under "
            f"QEMU: {how_long}"
        )
        if spec.target.cross is not None and self.estimate is not None:
            cross = replace(self.estimate, strategy="cross")
            line += f"; cross would take {duration(cross.wall_s)} (leave --strategy out)"
        return line

    def to_json(self) -> dict[str, Any]:
        spec, target = self.spec, self.spec.target
        return {
            "package": spec.recipe.name,
            "version": spec.version,
            "target": target.name,
            "python": spec.python,
            "platform": target.platform,
            "strategy": self.strategy,
            "cross": _cross_json(target) if self.strategy == "cross" else None,
            "cuda_toolkit": _toolkit_json(target, self.strategy),
            "base_image": target.base_image.pinned,
            "manylinux_tag": target.manylinux_tag,
            "exclude_libs": list(target.provided_libs),
            "source": {
                "kind": spec.recipe.source.kind,
                "url": getattr(spec.recipe.source, "url", None),
                "ref": spec.source_ref,
                "submodules": getattr(spec.recipe.source, "submodules", False),
            },
            "build_key": self.build_key,
            "build_command": list(self.build_command),
            "build_args": self.build_args,
            "parallelism": {
                "jobs": self.parallelism.jobs,
                "nvcc_threads": self.parallelism.nvcc_threads,
                "builder_cpus": self.resources.cpus,
                "builder_memory_gib": round(self.resources.memory_gib, 1),
                "builder_figures_from": self.resources.source,
            },
            "smoke": spec.recipe.smoke.expectations(target),
            "estimate": self.estimate.to_json() if self.estimate else None,
        }


def build_key(spec: JobSpec, dockerfile: str) -> str:
    """Content hash of everything that shapes the wheel.

    Parts of the recipe that only choose jobs (the version list, defaults,
    compatibility rules, smoke expectations) are left out, so adding a new
    version to a recipe does not invalidate wheels already built. The
    Dockerfile's text carries SOURCE_DATE_EPOCH.
    """
    return canonical_digest(
        {
            "farm": __version__,
            "recipe": recipe_shaping(spec),
            "target": target_shaping(spec),
            "version": spec.version,
            "source_ref": spec.source_ref,
            "source_digest": spec.source_digest,
            "python": spec.python,
            "dockerfile": dockerfile,
        }
    )


def canonical_digest(value: Any) -> str:
    """sha256 of a JSON value written canonically (sorted keys, no spaces)."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def recipe_shaping(spec: JobSpec) -> dict[str, Any]:
    """The parts of the recipe that shape the wheel (see :func:`build_key`)."""
    shaping = spec.recipe.model_dump(
        mode="json", include={"name", "source", "needs", "build"}, exclude_defaults=True
    )
    shaping["build"].pop("measured", None)  # figures of an earlier build, for estimates only
    return shaping


def target_shaping(spec: JobSpec) -> dict[str, Any]:
    """The target as it shapes the wheel: all of it but its description and aliases.

    Fields left at their defaults are left out, so a field farm adds later (with a default
    that changes nothing) does not change the key of every wheel already built."""
    return spec.target.model_dump(
        mode="json", exclude={"description", "aliases"}, exclude_defaults=True
    )


def _toolkit_json(target: Target, strategy: Strategy) -> dict[str, Any] | None:
    """Where the job's CUDA comes from: an image, or a stack of pinned registry packages."""
    if target.cuda is None:
        return None
    stack = target.cuda.stack
    if stack is None or strategy != "cross":
        image = target.cross.builder_image.pinned if strategy == "cross" and target.cross else None
        return {
            "from": "image",
            "image": image or target.base_image.pinned,
            "cuda_home": target.cross_cuda_home if strategy == "cross" else target.cuda.home,
            "release": target.cuda.version,
        }
    return {
        "from": "packages",
        "name": stack.name,
        "release": stack.release,
        "key": stack.key,
        "image": target.cuda_stack_image,
        "cuda_home": target.cross_cuda_home,
        "packages": [
            {"registry": p.registry, "name": p.name, "version": p.version, "sha256": p.sha256}
            for p in stack.packages
        ],
    }


def _cross_json(target: Target) -> dict[str, Any] | None:
    cross = target.cross
    if cross is None:
        return None
    return {
        "build_platform": cross.build_platform,
        "builder_image": cross.builder_image.pinned,
        "sysroot_image": target.base_image.pinned,
        "triplet": cross.triplet,
        "cc": cross.cc,
        "cxx": cross.cxx,
        "cuda_home": target.cross_cuda_home,
        "nvcc": f"{target.cross_cuda_home}/bin/nvcc -ccbin {cross.cxx}"
        if target.cross_cuda_home
        else None,
    }


def plan_job(
    catalog: Catalog,
    package: str,
    target_name: str,
    *,
    version: str | None = None,
    python: str | None = None,
    resources: BuilderResources,
    strategy: Strategy | None = None,
) -> BuildJob:
    entry = catalog.recipe(package)
    target = catalog.target(target_name)
    recipe = Entry(entry.model.for_target(target.model.name), entry.path)
    chosen = select(recipe, target.model, version=version, python=python)
    how = strategy or recipe.model.strategy_for(target.model)
    _check_builder(recipe, target, how)
    _check_strategy(recipe, target, how)
    spec = JobSpec(
        source_digest=_tree_digest(recipe.model, recipe.path)
        or source_digest(recipe.model, recipe.path, chosen.version),
        recipe=recipe.model,
        recipe_path=recipe.path,
        target=target.model,
        version=chosen.version,
        python=chosen.python,
        strategy=how,
    )
    driver = driver_for(recipe.model.build)
    parallelism = driver.parallelism(recipe.model.build, resources)
    dockerfile = render_dockerfile(spec)
    command = driver.build_argv(
        spec, jobs=str(parallelism.jobs), nvcc_threads=str(parallelism.nvcc_threads)
    )
    return BuildJob(
        spec=spec,
        strategy=how,
        dockerfile=dockerfile,
        build_key=build_key(spec, dockerfile),
        build_command=tuple(command),
        parallelism=parallelism,
        resources=resources,
        estimate=_estimate(spec, parallelism),
    )


def _estimate(spec: JobSpec, parallelism: Parallelism) -> BuildEstimate | None:
    measured = getattr(spec.recipe.build, "measured", None)
    if measured is None:
        return None
    cuda = spec.target.cuda
    return estimate(
        measured,
        architectures=len(cuda.architectures) if cuda else 0,
        jobs=parallelism.jobs,
        strategy=spec.strategy,
    )


def _check_strategy(recipe: Entry[Recipe], target: Entry[Target], how: Strategy) -> None:
    """Cross needs the target's toolchain; emulated CUDA needs a toolkit in the target image."""
    if how == "cross" and target.model.cross is None:
        raise IncompatibleError(
            f"target {target.model.name} has no cross toolchain: it can only be built emulated",
            hint=f"add a cross: section to {display(target.path)} or use --strategy emulated",
        )
    stack = target.model.cuda.stack if target.model.cuda is not None else None
    if how != "emulated" or stack is None or not recipe.model.compiles_cuda_for(target.model):
        return
    # A bootstrapped image holds the CUDA runtime only; a production image has the toolkit.
    if target.model.base_image.bootstrap is not None:
        raise IncompatibleError(
            f"target {target.model.name} takes its CUDA from an x86_64 cross toolkit "
            f"({stack.name}): {recipe.model.name} builds there with --strategy cross only",
            hint=f"use --strategy cross, or set strategy: {{{target.model.name}: cross}} in "
            f"{display(recipe.path)}",
        )


def _check_builder(recipe: Entry[Recipe], target: Entry[Target], how: Strategy) -> None:
    """A strategy or a CUDA target the recipe's builder cannot serve (cibuildwheel: either)."""
    build, name = recipe.model.build, recipe.model.name
    if how not in build.strategies:
        raise IncompatibleError(
            f"{name} builds with {build.kind}, which runs {' or '.join(build.strategies)} only: "
            f"--strategy {how} is not possible",
            hint=f"leave --strategy out, or give {display(recipe.path)} a build kind that "
            f"builds {how} (pep517)",
        )
    if target.model.cuda is not None and not build.builds_cuda:
        raise IncompatibleError(
            f"{name} builds with {build.kind}, which cannot build for CUDA targets "
            f"({target.model.name} has CUDA {target.model.cuda.version})",
            hint=f"build it for a target without CUDA, or give {display(recipe.path)} a build "
            "kind that builds with CUDA (pep517)",
        )


def _tree_digest(recipe: Recipe, recipe_path: Path) -> str | None:
    """The content digest of a repository-kept source tree; None for other sources."""
    if recipe.source.kind != "path":
        return None
    return tree_digest((recipe_path.parent / recipe.source.path).resolve())


def plan_document(jobs: list[BuildJob]) -> dict[str, Any]:
    return {
        "schema_version": PLAN_SCHEMA_VERSION,
        "farm_version": __version__,
        "jobs": [job.to_json() for job in jobs],
    }
