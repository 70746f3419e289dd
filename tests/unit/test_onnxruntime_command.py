"""The build command is accepted by onnxruntime's own build script argument parser.

``tests/data/onnxruntime_build_options.json`` transcribes, as data, the options
of ``tools/ci_build/build.py`` / ``build_args.py`` at three points of upstream's
history. The test rebuilds an argparse parser from it (Linux host, exact option
names) and parses every command the farm plans for every version it can build.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet

from farm.catalog import Catalog
from farm.compat import violations
from farm.plan import plan_job
from farm.resources import BuilderResources

DATA = Path(__file__).resolve().parent.parent / "data" / "onnxruntime_build_options.json"
SNAPSHOTS: list[dict[str, Any]] = json.loads(DATA.read_text())["snapshots"]
TYPES = {"int": int, "str": str, "float": float}


class ParseFailed(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would exit the process
        raise ParseFailed(message)


def upstream_parser(snapshot: dict[str, Any]) -> argparse.ArgumentParser:
    parser = _Parser(allow_abbrev=False, add_help=False)
    for option in snapshot["options"]:
        if option.get("platform", "all") not in ("all", "linux", "non_windows"):
            continue
        kwargs: dict[str, Any] = {"required": bool(option.get("required"))}
        action = option.get("action")
        if action in ("store_true", "store_false", "store_const", "count"):
            kwargs["action"] = action
            if action == "store_const":
                kwargs["const"] = option.get("const")
        else:
            kwargs["action"] = action or "store"
            if option.get("nargs") is not None:
                kwargs["nargs"] = option["nargs"]
            if option.get("nargs") == "?":
                kwargs["const"] = option.get("const")
            kwargs["type"] = TYPES.get(option.get("type") or "str", str)
            if option.get("choices"):
                kwargs["choices"] = option["choices"]
        if option.get("dest"):
            kwargs["dest"] = option["dest"]
        parser.add_argument(*option["flags"], **kwargs)
    return parser


def snapshot_for(version: str) -> dict[str, Any]:
    for snapshot in SNAPSHOTS:
        if version in SpecifierSet(snapshot["applies_to"]):
            return snapshot
    raise LookupError(version)


def _buildable(catalog: Catalog) -> list[tuple[str, str]]:
    pairs = []
    for name, entry in sorted(catalog.targets.items()):
        # A target's override may narrow the versions (an archive pins only some).
        recipe = catalog.recipes["onnxruntime-gpu"].model.for_target(name)
        for version in recipe.versions:
            if any(not violations(recipe, entry.model, version, py) for py in entry.model.python):
                pairs.append((name, version))
    return pairs


def test_every_snapshot_rejects_an_unknown_flag() -> None:
    for snapshot in SNAPSHOTS:
        with pytest.raises(ParseFailed):
            upstream_parser(snapshot).parse_args(["--build_dir", "b", "--use_cuda_please"])


def test_every_plannable_job_parses_with_upstreams_parser(
    catalog: Catalog, ci_runner: BuilderResources
) -> None:
    pairs = _buildable(catalog)
    assert {target for target, _ in pairs} == {
        "jetpack5",
        "jetpack6",
        "jetpack7",
        "standin-cuda12",
        "standin-cuda13",
    }
    jobs = [
        plan_job(catalog, "onnxruntime-gpu", target, version=version, resources=ci_runner, **how)
        for target, version in pairs
        # Both strategies where the target's image has a CUDA toolkit (not a stand-in's).
        for how in ({}, {"strategy": "emulated"})
        if not how or catalog.targets[target].model.base_image.bootstrap is None
    ]
    assert {job.strategy for job in jobs} == {"cross", "emulated"}
    for job in jobs:
        target, version = job.spec.target.name, job.spec.version
        _interpreter, script, *arguments = job.build_command
        assert script == "tools/ci_build/build.py"
        parsed = upstream_parser(snapshot_for(version)).parse_args(arguments)
        # The TensorRT provider exactly where the target has TensorRT: every JetPack.
        has_tensorrt = catalog.targets[target].model.tensorrt is not None
        assert parsed.use_tensorrt == has_tensorrt, target
        assert has_tensorrt or target.startswith("standin-")
        assert parsed.use_cuda and parsed.build_wheel
        assert parsed.config == ["Release"]
        # build.py names a CUDA build's wheel onnxruntime-gpu itself; passing the suffix too
        # gives setup.py a second --wheel_name_suffix, which it refuses.
        assert parsed.wheel_name_suffix is None
        assert parsed.parallel == job.parallelism.jobs
        assert parsed.nvcc_threads == job.parallelism.nvcc_threads
        cuda = catalog.targets[target].model.cuda
        assert cuda is not None
        defines = parsed.cmake_extra_defines
        flat = (
            [item for group in defines for item in group]
            if isinstance(defines[0], list)
            else defines
        )
        assert f"CMAKE_CUDA_ARCHITECTURES={';'.join(cuda.architectures)}" in flat


def test_cross_jobs_parse_with_upstreams_parser(
    catalog: Catalog, ci_runner: BuilderResources
) -> None:
    for target, version in _buildable(catalog):
        if catalog.targets[target].model.cross is None:
            continue
        job = plan_job(
            catalog, "onnxruntime-gpu", target, version=version, resources=ci_runner,
            strategy="cross",
        )  # fmt: skip
        _interpreter, _script, *arguments = job.build_command
        parsed = upstream_parser(snapshot_for(version)).parse_args(arguments)
        # The stand-in builds against the sysroot's protobuf with the builder's own protoc.
        protoc = "/usr/bin/protoc" if target == "standin-cuda12" else "/opt/farm/protoc/bin/protoc"
        assert parsed.path_to_protoc_exe == protoc
        assert parsed.cuda_home != catalog.targets[target].model.cuda.home  # type: ignore[union-attr]
