"""The cross strategy for real: native compilers, the target image as sysroot, QEMU only to test."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from tests.integration.conftest import build_through_smoke, run_farm
from tests.integration.test_build import ELF_MACHINE_AARCH64, _elf_machine

pytestmark = pytest.mark.integration


def test_the_demo_built_cross_repairs_and_passes_its_smoke_test(
    host_ready: object, tmp_path: Path
) -> None:
    document = build_through_smoke(
        tmp_path, "demo", "--target", "bookworm-arm64", "--strategy", "cross"
    )
    (built,) = document["wheels"]
    assert Path(built).name == "farm_demo-0.1.0-cp311-cp311-linux_aarch64.whl"
    wheel = Path(document["wheel"])
    # The same kind of wheel as the emulated build: same tags after repair.
    assert (
        wheel.name
        == "farm_demo-0.1.0-cp311-cp311-manylinux_2_34_aarch64.manylinux_2_36_aarch64.whl"
    )
    with zipfile.ZipFile(wheel) as archive:
        (extension,) = [n for n in archive.namelist() if n.endswith(".so") and "libs" not in n]
        assert _elf_machine(archive.read(extension)) == ELF_MACHINE_AARCH64
    dockerfile = (Path(document["job_dir"]) / "Dockerfile").read_text()
    assert "FROM --platform=$BUILDPLATFORM farm.local/bookworm-amd64-cross" in dockerfile
    log = (Path(document["job_dir"]) / "build.log").read_text()
    assert "aarch64-linux-gnu-gcc" in log


def test_a_cmake_project_builds_cross_with_the_farms_toolchain_file(
    host_ready: object, tmp_path: Path
) -> None:
    env = {"FARM_STATE_DIR": str(tmp_path / "state")}
    result = run_farm(
        "build", "demo-cmake", "--target", "bookworm-arm64", "--strategy", "cross",
        "--output-dir", str(tmp_path / "out"), "--json", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    document = json.loads(result.stdout)
    assert Path(document["wheel"]).name == (
        "farm_demo_cmake-0.1.0-cp311-cp311-manylinux_2_24_aarch64.manylinux_2_36_aarch64.whl"
    )
    # The smoke test asserts the extension reports __aarch64__ and matches zlib's Adler-32.
    (smoke,) = [s for s in document["stages"] if s["stage"] == "smoke"]
    assert smoke["state"] == "ran"
    dockerfile = (Path(document["job_dir"]) / "Dockerfile").read_text()
    assert "CMAKE_TOOLCHAIN_FILE=/opt/farm/toolchain.cmake" in dockerfile
    assert "set(CMAKE_SYSROOT /opt/farm/sysroot)" in dockerfile


def test_onnxruntime_cross_dry_run_shows_toolchain_sysroot_and_cuda() -> None:
    result = run_farm(
        "build", "onnxruntime-gpu", "--target", "jetpack6", "--strategy", "cross", "--dry-run"
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "# strategy: cross; builder image nvcr.io/nvidia/cuda:12.6.3-devel-ubuntu22.04" in out
    assert "sysroot copied from nvcr.io/nvidia/l4t-jetpack:r36.4.0" in out
    assert "CUDA /usr/local/cuda-12.6/bin/nvcc -ccbin aarch64-linux-gnu-g++" in out
    assert "CMAKE_TOOLCHAIN_FILE=/opt/farm/toolchain.cmake" in out
    assert "--cudnn_home /opt/farm/sysroot/usr/lib/aarch64-linux-gnu" in out
