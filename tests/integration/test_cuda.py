"""CUDA code cross-built for real: the demo kernel for both stand-ins, from pinned packages."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from tests.integration.conftest import (
    REPO,
    build_through_smoke,
    onnxruntime_aarch64_wheel,
    run_farm,
)

pytestmark = pytest.mark.integration


def cuobjdump() -> str:
    """cuobjdump from PyPI's nvidia-cuda-cuobjdump (a test requirement)."""
    spec = importlib.util.find_spec("nvidia")
    for root in spec.submodule_search_locations if spec and spec.submodule_search_locations else []:
        for candidate in sorted(Path(root).glob("cu*/bin/cuobjdump")):
            return str(candidate)
    pytest.fail("cuobjdump not installed: pip install nvidia-cuda-cuobjdump (the test extra)")


def cuobjdump_listing(library: Path) -> set[str]:
    """cuobjdump's names of the cubins (``sm_87``) and PTX (``compute_87``) in a library.

    cuobjdump names a family-specific cubin without its ``f`` (sm_110f is "sm_110"); farm
    reads the flag, so the two agree on every library whose code has no ``f`` variant."""
    result = subprocess.run(
        [cuobjdump(), "--list-elf", "--list-ptx", str(library)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    names = {f"sm_{arch}" for arch in re.findall(r"\.sm_(\w+?)\.cubin", result.stdout)}
    return names | {f"compute_{arch}" for arch in re.findall(r"\.sm_(\w+?)\.ptx", result.stdout)}


def _elf(data: bytes, path: Path) -> tuple[str, list[str]]:
    path.write_bytes(data)
    with path.open("rb") as handle:
        elf = ELFFile(handle)
        dynamic = elf.get_section_by_name(".dynamic")
        needed = (
            [tag.needed for tag in dynamic.iter_tags() if tag.entry.d_tag == "DT_NEEDED"]
            if isinstance(dynamic, DynamicSection)
            else []
        )
        return elf["e_machine"], needed


@pytest.mark.parametrize(
    ("target", "major", "archs"),
    [("standin-cuda12", "12", {"87"}), ("standin-cuda13", "13", {"87", "110"})],
)
def test_the_cuda_demo_is_cross_built_repaired_and_smoke_tested(
    host_ready: object, tmp_path: Path, target: str, major: str, archs: set[str]
) -> None:
    document = build_through_smoke(tmp_path, "demo-cuda", "--target", target)
    wheel = Path(document["wheel"])
    assert wheel.name.startswith("farm_demo_cuda-0.1.0-cp313-cp313-manylinux_")
    assert wheel.name.endswith(".manylinux_2_41_aarch64.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (extension,) = [n for n in names if n.endswith(".so") and ".libs/" not in n]
        machine, needed = _elf(archive.read(extension), tmp_path / "extension.so")
    assert machine == "EM_AARCH64"
    assert f"libcudart.so.{major}" in needed
    # The target provides the CUDA runtime: repair must not have bundled it.
    assert not [n for n in names if "libcudart" in n], names
    listed = cuobjdump_listing(tmp_path / "extension.so")
    assert {name for name in listed if name.startswith("sm_")} == {f"sm_{a}" for a in archs}
    # farm reads the same device code from the fat binary as cuobjdump lists, and judges
    # it to cover every SM of the target (cubin and PTX for each: "87;110" compiles both).
    inspected = run_farm("inspect", str(wheel), "--target", target, "--json")
    assert inspected.returncode == 0, inspected.stdout
    (library,) = [lib for lib in json.loads(inspected.stdout)["libraries"] if lib["kernels"]]
    assert set(library["kernels"]) == listed
    assert listed == {f"sm_{a}" for a in archs} | {f"compute_{a}" for a in archs}
    (record_path,) = Path(document["job_dir"]).rglob(f"smoke-{target}.json")
    record = json.loads(record_path.read_text())
    output = json.dumps(record)
    # No GPU under QEMU: the runtime loads and names the missing driver.
    assert "cudaErrorInsufficientDriver" in output or "cudaErrorNoDevice" in output, output
    dockerfile = (Path(document["job_dir"]) / "Dockerfile").read_text()
    assert "COPY --from=cuda-stack / /opt/farm/cuda" in dockerfile
    # Judged against the JetPack it stands in for, the wheel is honestly not for it.
    production = {"standin-cuda12": "jetpack6", "standin-cuda13": "jetpack7"}[target]
    inspected = run_farm("inspect", str(wheel), "--target", production, "--json")
    assert inspected.returncode == 1, inspected.stderr
    problems = " ".join(json.loads(inspected.stdout)["problems"])
    assert f"wheel is for cp313, target {production} has python" in problems, problems
    assert "kernel image" not in problems  # its device code does run on the JetPack's GPUs
    # The smoke record says which GPUs the wheel carries kernels for.
    (coverage,) = record["cuda_kernels"]
    assert coverage["uncovered"] == [] and set(coverage["kernels"]) == listed


def test_a_stack_package_whose_bytes_differ_from_the_pin_stops_before_building(
    host_ready: object, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog"
    shutil.copytree(REPO / "recipes" / "stacks", catalog / "stacks")
    stack = catalog / "stacks" / "cuda-13.0-pypi.yaml"
    text = stack.read_text()
    pinned = "56fe502eb77625a12f25172caa3cdddb4e4c8ba2c8c17dba44b164761b380f03"
    assert pinned in text
    stack.write_text(text.replace(pinned, "f" * 64))
    env = {
        "FARM_STATE_DIR": str(tmp_path / "state"),
        "FARM_CACHE_DIR": str(tmp_path / "cache"),
        "FARM_RECIPES": str(catalog),
    }
    result = run_farm(
        "build", "demo-cuda", "--target", "standin-cuda13", "--output-dir", str(tmp_path / "out"),
        env=env,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("farm: error")]
    assert len(errors) == 1, result.stderr
    assert "nvidia-cuda-nvcc 13.0.88" in errors[0]
    assert f"but {'f' * 64} is pinned" in errors[0]
    assert "Traceback" not in result.stderr
    # No toolkit and no file of the refused package is left behind (the target's own image,
    # made first when this machine has none yet, may be).
    assert not list((tmp_path / "cache").glob("toolkits/*.tar"))
    assert not list((tmp_path / "cache").rglob("nvidia_cuda_nvcc*"))
    assert not (tmp_path / "out" / "demo-cuda").exists() or not list(
        (tmp_path / "out").rglob("*.whl")
    )


@pytest.fixture(scope="module")
def pypi_onnxruntime_gpu() -> Path:
    """PyPI's onnxruntime-gpu 1.31.1 for aarch64 (CUDA 13): cubins for desktop and data-centre
    GPUs only."""
    return onnxruntime_aarch64_wheel("1.31.1", "3.11", project="onnxruntime-gpu")


@pytest.mark.parametrize(("target", "sm"), [("jetpack6", "87"), ("jetpack7", "110")])
def test_pypis_gpu_wheel_has_no_kernels_for_jetson(
    pypi_onnxruntime_gpu: Path, tmp_path: Path, target: str, sm: str
) -> None:
    result = run_farm("inspect", str(pypi_onnxruntime_gpu), "--target", target, "--json")
    assert result.returncode == 1, result.stdout
    report = json.loads(result.stdout)
    expected = (
        f"libonnxruntime_providers_cuda.so has no kernel image for sm_{sm} of target {target} "
        "(cubins for sm_89, sm_90a, sm_120a, sm_121a and no PTX): its kernels fail with "
        "cudaErrorNoKernelImageForDevice there"
    )
    assert expected in report["problems"]
    # What farm read is what cuobjdump lists.
    provider = "onnxruntime/capi/libonnxruntime_providers_cuda.so"
    with zipfile.ZipFile(pypi_onnxruntime_gpu) as archive:
        (tmp_path / "provider.so").write_bytes(archive.read(provider))
    (library,) = [lib for lib in report["libraries"] if lib["path"] == provider]
    assert set(library["kernels"]) == cuobjdump_listing(tmp_path / "provider.so")
    human = run_farm("inspect", str(pypi_onnxruntime_gpu), "--target", target)
    assert f"no kernel image for sm_{sm}" in human.stdout and "INCOMPATIBLE" in human.stdout
