"""Build drivers: how a recipe's ``build.kind`` turns into a command and a Dockerfile.

Each driver module offers ``build_argv(spec, jobs=..., nvcc_threads=...)``,
``template_context(spec)`` and ``parallelism(build, resources)``; the planner
and the renderer look the driver up here and never branch on the kind.
"""

from __future__ import annotations

from typing import Any, Protocol

from farm.builders import cibuildwheel, onnxruntime, pep517
from farm.jobspec import JobSpec
from farm.models import Build
from farm.resources import BuilderResources, Parallelism


class Driver(Protocol):
    def build_argv(self, spec: JobSpec, *, jobs: str, nvcc_threads: str) -> list[str]: ...

    def template_context(self, spec: JobSpec) -> dict[str, Any]: ...

    def parallelism(self, build: Build, resources: BuilderResources) -> Parallelism: ...


_DRIVERS: dict[str, Driver] = {
    "onnxruntime": onnxruntime,
    "pep517": pep517,
    "cibuildwheel": cibuildwheel,
}


def driver_for(build: Build) -> Driver:
    return _DRIVERS[build.kind]
