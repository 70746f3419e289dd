"""The cross strategy: choosing it, rendering it, and the CMake toolchain file."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from farm.baseimage import images_for
from farm.builders.cmake_cross import toolchain_file
from farm.catalog import Catalog, Entry
from farm.errors import IncompatibleError
from farm.plan import plan_job
from farm.resources import BuilderResources
from tests.unit.test_render import _instructions


def test_emulated_is_the_default_and_cross_is_asked_for(
    catalog: Catalog, ci_runner: BuilderResources
) -> None:
    emulated = plan_job(catalog, "demo", "bookworm-arm64", resources=ci_runner)
    cross = plan_job(catalog, "demo", "bookworm-arm64", resources=ci_runner, strategy="cross")
    assert (emulated.strategy, cross.strategy) == ("emulated", "cross")
    assert emulated.build_key != cross.build_key
    assert cross.to_json()["strategy"] == "cross"


def test_a_target_without_a_cross_toolchain_refuses_cross(
    catalog: Catalog, ci_runner: BuilderResources
) -> None:
    entry = catalog.targets["jetpack5"]
    without = Entry(entry.model.model_copy(update={"cross": None}), entry.path)
    changed = replace(catalog, targets={**catalog.targets, "jetpack5": without})
    with pytest.raises(IncompatibleError, match="jetpack5 has no cross toolchain"):
        plan_job(changed, "onnxruntime-gpu", "jetpack5", resources=ci_runner, strategy="cross")
    # Without one, a CUDA package is built emulated, and says how long that takes.
    job = plan_job(changed, "onnxruntime-gpu", "jetpack5", resources=ci_runner)
    assert job.strategy == "emulated" and job.emulation_warning is not None


def test_the_cross_dockerfile_compiles_on_the_build_platform_against_the_sysroot(
    catalog: Catalog, ci_runner: BuilderResources
) -> None:
    job = plan_job(catalog, "demo", "bookworm-arm64", resources=ci_runner, strategy="cross")
    lines = _instructions(job.dockerfile)
    froms = [line for line in lines if line.startswith("FROM ")]
    target = catalog.targets["bookworm-arm64"].model
    assert target.cross is not None
    assert froms[0] == f"FROM {target.base_image.pinned} AS sysroot"
    assert froms[1] == (
        f"FROM --platform=$BUILDPLATFORM {target.cross.builder_image.pinned} AS toolchain"
    )
    assert "COPY --from=sysroot / /opt/farm/sysroot" in lines
    crossenv = next(line for line in lines if "-m crossenv" in line)
    assert "--cc aarch64-linux-gnu-gcc" in crossenv
    assert "_sysconfigdata__linux_aarch64-linux-gnu.py" in crossenv
    # The target's own tag first, then every manylinux tag glibc 2.36 admits, no higher.
    assert "--platform-tag linux_aarch64 --platform-tag manylinux2014_aarch64" in crossenv
    assert "manylinux_2_36_aarch64" in crossenv and "manylinux_2_37" not in crossenv
    assert any("CMAKE_TOOLCHAIN_FILE=/opt/farm/toolchain.cmake" in line for line in lines)
    assert job.build_command[0] == "/opt/farm/cross/cross/bin/python"
    assert froms[-1] == "FROM scratch AS wheels"


def test_a_cross_job_needs_the_builder_image_too(catalog: Catalog, tmp_path: Path) -> None:
    target = catalog.targets["bookworm-arm64"].model
    cross = images_for(target, "cross", tmp_path)
    assert [s.platform for s in cross] == ["linux/arm64", "linux/amd64"]
    assert [s.platform for s in images_for(target, "emulated", tmp_path)] == ["linux/arm64"]


def test_a_stand_in_cross_job_also_needs_its_assembled_cuda_stack(
    catalog: Catalog, tmp_path: Path
) -> None:
    target = catalog.targets["standin-cuda12"].model
    sources = images_for(target, "cross", tmp_path)
    assert [s.platform for s in sources] == ["linux/arm64", "linux/amd64", "linux/amd64"]
    stack = sources[2]
    assert stack.reference == target.cuda_stack_image
    assert stack.layers[0].tarball.parent == tmp_path / "toolkits"
    # The target image is its root filesystem plus the CUDA runtime the device provides.
    rootfs, runtime = (layer.tarball.name for layer in sources[0].layers)
    assert rootfs.startswith("trixie-arm64-")  # shared by every target with this bootstrap
    assert runtime.startswith("standin-cuda12-runtime-")


def test_cmake_toolchain_for_a_cuda_target(catalog: Catalog) -> None:
    jetpack6 = catalog.targets["jetpack6"].model
    cross = catalog.targets["bookworm-arm64"].model.cross
    assert cross is not None
    with_cuda = jetpack6.model_copy(
        update={"cross": cross.model_copy(update={"cuda_home": "/usr/local/cuda-12.6"})}
    )
    text = toolchain_file(with_cuda)
    assert "set(CMAKE_SYSTEM_PROCESSOR aarch64)" in text
    assert "set(CMAKE_SYSROOT /opt/farm/sysroot)" in text
    assert "set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)" in text
    assert "set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)" in text
    assert "set(CMAKE_CUDA_COMPILER /usr/local/cuda-12.6/bin/nvcc)" in text
    assert "set(CMAKE_CUDA_HOST_COMPILER aarch64-linux-gnu-g++)" in text
    assert "/usr/local/cuda-12.6/targets/aarch64-linux" in text
    assert "CUDA" not in toolchain_file(catalog.targets["bookworm-arm64"].model)


def test_onnxruntime_cross_uses_the_builders_nvcc_and_the_sysroots_libraries(
    catalog: Catalog, ci_runner: BuilderResources
) -> None:
    job = plan_job(catalog, "onnxruntime-gpu", "jetpack6", resources=ci_runner, strategy="cross")
    argv = list(job.build_command)
    assert argv[argv.index("--cuda_home") + 1] == "/usr/local/cuda-12.6"
    assert argv[argv.index("--cudnn_home") + 1] == "/opt/farm/sysroot/usr/lib/aarch64-linux-gnu"
    assert argv[argv.index("--tensorrt_home") + 1] == "/opt/farm/sysroot/usr/lib/aarch64-linux-gnu"
    assert argv[argv.index("--path_to_protoc_exe") + 1] == "/opt/farm/protoc/bin/protoc"
    defines = argv[argv.index("--cmake_extra_defines") + 1 :]
    assert "CMAKE_TOOLCHAIN_FILE=/opt/farm/toolchain.cmake" in defines
    assert "Python_INCLUDE_DIR=/opt/farm/sysroot/usr/include/python3.10" in defines
    lines = _instructions(job.dockerfile)
    assert lines[0] == "FROM nvcr.io/nvidia/l4t-jetpack:r36.4.0 AS sysroot"
    assert any("cuda-cross-aarch64-12-6" in line for line in lines)
    toolchain = next(line for line in lines if "/opt/farm/toolchain.cmake" in line)
    assert "set(CMAKE_CUDA_HOST_COMPILER aarch64-linux-gnu-g++)" in toolchain
    assert any("wheel tags --remove --platform-tag linux_aarch64" in line for line in lines)
    assert (
        job.to_json()["cross"]["nvcc"]
        == "/usr/local/cuda-12.6/bin/nvcc -ccbin aarch64-linux-gnu-g++"
    )


def test_a_stand_in_cannot_build_cuda_code_emulated(catalog: Catalog) -> None:
    resources = BuilderResources(cpus=2, memory_gib=24.0, source="test")
    with pytest.raises(IncompatibleError, match="builds there with --strategy cross only"):
        plan_job(catalog, "demo-cuda", "standin-cuda12", resources=resources, strategy="emulated")
    job = plan_job(catalog, "demo-cuda", "standin-cuda12", resources=resources)
    assert job.strategy == "cross"  # the recipe's own choice for every target


def test_a_cuda_package_builds_cross_wherever_the_target_has_a_toolchain(
    catalog: Catalog, ci_runner: BuilderResources
) -> None:
    for target in ("jetpack6", "jetpack7", "standin-cuda12", "standin-cuda13"):
        job = plan_job(catalog, "onnxruntime-gpu", target, resources=ci_runner)
        assert job.strategy == "cross", target
        assert job.emulation_warning is None
    # Asked for by name, emulation is planned, and says first how long it should take.
    job = plan_job(catalog, "onnxruntime-gpu", "jetpack6", resources=ci_runner, strategy="emulated")
    assert job.strategy == "emulated"
    assert job.emulation_warning is not None
    assert job.emulation_warning.startswith(
        "onnxruntime-gpu 1.23.2 for jetpack6 compiles CUDA under"
    )
    # A package without CUDA keeps the recipe's own default.
    assert plan_job(catalog, "demo", "bookworm-arm64", resources=ci_runner).strategy == "emulated"


def test_the_recipes_own_entry_for_a_target_wins(catalog: Catalog) -> None:
    recipe = catalog.recipes["onnxruntime-gpu"].model
    jetpack6 = catalog.targets["jetpack6"].model
    named = recipe.model_copy(update={"strategy": {"*": "cross", "jetpack6": "emulated"}})
    assert named.strategy_for(jetpack6) == "emulated"
    assert recipe.strategy_for(jetpack6) == "cross"


def test_jetpack7_cross_takes_the_stand_ins_cuda_stack_and_its_own_image_as_sysroot(
    catalog: Catalog, ci_runner: BuilderResources
) -> None:
    jetpack7 = catalog.targets["jetpack7"].model
    standin = catalog.targets["standin-cuda13"].model
    assert jetpack7.cuda is not None and standin.cuda is not None
    assert jetpack7.cuda.stack == standin.cuda.stack
    assert jetpack7.cuda_stack_image == standin.cuda_stack_image
    assert [p.name for p in jetpack7.cuda.stack.packages][-1] == "nvidia-cudnn-cu13"  # type: ignore[union-attr]
    job = plan_job(catalog, "onnxruntime-gpu", "jetpack7", resources=ci_runner)
    document = job.to_json()
    assert document["cross"]["sysroot_image"] == "nvcr.io/nvidia/tensorrt:25.08-py3"
    assert document["cuda_toolkit"]["from"] == "packages"
    argv = list(job.build_command)
    assert argv[argv.index("--cuda_home") + 1] == "/opt/farm/cuda"
    assert argv[argv.index("--cudnn_home") + 1] == "/opt/farm/cuda/targets/sbsa-linux"
    assert argv[argv.index("--tensorrt_home") + 1] == "/opt/farm/sysroot/usr/lib/aarch64-linux-gnu"
    lines = _instructions(job.dockerfile)
    # The builder has Python 3.13; the target's 3.12 comes from uv, pinned.
    install = next(line for line in lines if "uv python install" in line)
    assert "--require-hashes" in install and "uv python install 3.12.16" in install
    assert any("python3.12 -m venv /opt/farm/venv" in line for line in lines)
    # Emulated, the image's own toolkit is used and no stack is assembled.
    emulated = plan_job(
        catalog, "onnxruntime-gpu", "jetpack7", resources=ci_runner, strategy="emulated"
    )
    assert emulated.to_json()["cuda_toolkit"]["cuda_home"] == "/usr/local/cuda"
    assert len(images_for(jetpack7, "emulated", Path("/nonexistent"))) == 1
