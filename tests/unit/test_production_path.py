"""The JetPack targets' cross builds against what the stand-ins proved here.

NVIDIA's images cannot be pulled on the farm's own CI, so each JetPack cross job is rendered and
compared with its stand-in's, which CI builds for real: the same template, toolchain file,
compilers and CUDA stack, differing only where the target's own data (its name, Python, SM
architectures, glibc, TensorRT) or its sysroot image says so.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import pytest

from farm.builders.cmake_cross import toolchain_file
from farm.catalog import Catalog
from farm.plan import BuildJob, plan_job
from farm.resources import BuilderResources


def _normalised(job: BuildJob) -> list[str]:
    """The job's Dockerfile with what the target's data decides written as placeholders."""
    target = job.spec.target
    assert target.cuda is not None
    text = job.dockerfile
    builder_python = target.cross.builder_python if target.cross else None
    if builder_python is not None:
        # The target's Python on the build machine, where the builder image has another.
        text = re.sub(
            r"# Python 3\.\d+\.\d+ on the build machine.*?/usr/local/bin/python3\.\d+\n",
            "",
            text,
            flags=re.S,
        )
    text = text.replace(target.name, "TARGET")
    text = text.replace(";".join(target.cuda.architectures), "ARCHS")
    text = text.replace("'CMAKE_CUDA_ARCHITECTURES=ARCHS'", "CMAKE_CUDA_ARCHITECTURES=ARCHS")
    text = re.sub(r"python ?3\.\d+", "PYTHON", text, flags=re.I)
    text = re.sub(r"(--platform-tag \S+ )+\\", "TAGS \\\\", text)
    return text.splitlines()


def _differences(left: BuildJob, right: BuildJob) -> list[str]:
    diff = difflib.unified_diff(_normalised(left), _normalised(right), lineterm="", n=0)
    return [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")]


@pytest.mark.parametrize(
    ("package", "version"), [("demo-cuda", None), ("onnxruntime-gpu", "1.31.1")]
)
def test_jetpack7_and_its_stand_in_differ_only_in_the_sysroot_and_the_targets_data(
    catalog: Catalog, ci_runner: BuilderResources, package: str, version: str | None
) -> None:
    standin = plan_job(catalog, package, "standin-cuda13", version=version, resources=ci_runner)
    jetpack7 = plan_job(catalog, package, "jetpack7", version=version, resources=ci_runner)
    assert standin.strategy == jetpack7.strategy == "cross"
    changed = _differences(standin, jetpack7)
    # The sysroot: the stand-in's bootstrapped image, JetPack 7's TensorRT image.
    bootstrapped = standin.spec.target.base_image.pinned.replace("standin-cuda13", "TARGET")
    assert changed[:2] == [
        f"-FROM {bootstrapped} AS sysroot",
        "+FROM nvcr.io/nvidia/tensorrt:25.08-py3 AS sysroot",
    ]
    # The rest: the TensorRT provider, where the target has TensorRT.
    assert all(line.startswith("+") and "tensorrt" in line for line in changed[2:]), changed
    assert len(changed[2:]) == (2 if package == "onnxruntime-gpu" else 0)
    _plans_agree(standin.to_json(), jetpack7.to_json())


def _plans_agree(standin: dict[str, Any], jetpack7: dict[str, Any]) -> None:
    assert standin["cuda_toolkit"] == jetpack7["cuda_toolkit"]  # one stack, one image key
    assert {**standin["cross"], "sysroot_image": None} == {
        **jetpack7["cross"],
        "sysroot_image": None,
    }
    assert standin["source"] == jetpack7["source"]
    target_data = {"target", "python", "base_image", "manylinux_tag", "exclude_libs", "smoke"}
    derived = {"build_key", "build_command", "cross", "estimate"}
    differing = {key for key in standin if standin[key] != jetpack7[key]}
    assert differing <= target_data | derived, differing


JETPACKS = ["jetpack5", "jetpack6", "jetpack7"]


def _stand_in(catalog: Catalog, target: str) -> str:
    """The stand-in that proved the target's path here: its own, else the CUDA 12 one."""
    named = [name for name, e in catalog.targets.items() if e.model.stands_in_for == target]
    return named[0] if named else "standin-cuda12"


def _toolchain(job: BuildJob) -> dict[str, str]:
    """The CMake toolchain file's settings, by variable."""
    return dict(re.findall(r"set\((\S+) ([^)]*)\)", toolchain_file(job.spec.target)))


@pytest.mark.parametrize("target", JETPACKS)
def test_each_jetpack_cross_build_is_the_stand_ins_with_the_targets_data(
    catalog: Catalog, ci_runner: BuilderResources, target: str
) -> None:
    job = plan_job(catalog, "onnxruntime-gpu", target, resources=ci_runner)
    proven = plan_job(catalog, "onnxruntime-gpu", _stand_in(catalog, target), resources=ci_runner)
    assert job.strategy == proven.strategy == "cross"
    recipe = catalog.recipes["onnxruntime-gpu"].model
    assert (
        recipe.for_target(target).build.dockerfile_for("cross") == "onnxruntime-cross.Dockerfile.j2"
    )
    # The same toolchain file: the same settings, their values from the target's data.
    mine, theirs = _toolchain(job), _toolchain(proven)
    assert set(mine) == set(theirs)
    spec = job.spec.target
    assert spec.cross is not None and spec.cuda is not None
    assert mine["CMAKE_CXX_COMPILER"] == spec.cross.cxx
    assert mine["CMAKE_CUDA_COMPILER"] == f"{spec.cross_cuda_home}/bin/nvcc"
    assert mine["CMAKE_CUDA_ARCHITECTURES"] == f'"{";".join(spec.cuda.architectures)}"'
    same = {"CMAKE_SYSTEM_NAME", "CMAKE_SYSTEM_PROCESSOR", "CMAKE_SYSROOT",
            "CMAKE_FIND_ROOT_PATH_MODE_PROGRAM", "CMAKE_FIND_ROOT_PATH_MODE_LIBRARY",
            "CMAKE_FIND_ROOT_PATH_MODE_INCLUDE", "CMAKE_FIND_ROOT_PATH_MODE_PACKAGE",
            "CMAKE_LIBRARY_ARCHITECTURE"}  # fmt: skip
    assert {key: mine[key] for key in same} == {key: theirs[key] for key in same}
    # The same CMake defines, but for those the target decides and the stand-in's own
    # additions (its recipe override: a system-library source).
    defines = _defines(job)
    proven_defines = _defines(proven)
    override = recipe.overrides.get(proven.spec.target.name)
    own = override.build if override is not None else None
    added = set(own.cmake_defines) if own is not None else set()
    decided = {"CMAKE_CUDA_ARCHITECTURES", "Python_INCLUDE_DIR"}
    assert set(defines) == set(proven_defines) - added
    for key in set(defines) - decided:
        assert defines[key] == proven_defines[key], key
    assert defines["CMAKE_CUDA_ARCHITECTURES"] == ";".join(spec.cuda.architectures)
    assert defines["Python_INCLUDE_DIR"].endswith(f"/include/python{job.spec.python}")


def _defines(job: BuildJob) -> dict[str, str]:
    argv = list(job.build_command)
    return dict(item.split("=", 1) for item in argv[argv.index("--cmake_extra_defines") + 1 :])
