"""farm build for real: BuildKit, QEMU aarch64 and the locally bootstrapped Debian base."""

from __future__ import annotations

import json
import shutil
import uuid
import zipfile
from pathlib import Path

import pytest

from tests.integration.conftest import REPO, run_farm

pytestmark = pytest.mark.integration
ELF_MACHINE_AARCH64 = 183  # e_machine of AArch64 in the ELF header


def demo_catalog(root: Path, c_suffix: str) -> Path:
    """A catalog whose demo recipe builds a copy of the demo with ``c_suffix`` appended to its C."""
    catalog = root / "catalog"
    (catalog / "packages").mkdir(parents=True)
    source = root / "demo-source"
    shutil.copytree(REPO / "demo", source)
    c_file = source / "src" / "farm_demo" / "_zstd.c"
    c_file.write_text(c_file.read_text() + c_suffix)
    recipe = (REPO / "recipes" / "packages" / "demo.yaml").read_text()
    (catalog / "packages" / "demo.yaml").write_text(
        recipe.replace("path: ../../demo", f"path: {source}")
    )
    return catalog


def _build(catalog: Path, out: Path, *extra: str) -> dict[str, object]:
    result = run_farm(
        "--recipes",
        str(catalog),
        "build",
        "demo",
        "--target",
        "bookworm-arm64",
        "--output-dir",
        str(out),
        "--json",
        *extra,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def first_build(
    host_ready: object, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, dict[str, object]]:
    """A cold build: the source differs from anything built before, so nothing is cached."""
    root = tmp_path_factory.mktemp("demo")
    catalog = demo_catalog(root, f"\n/* cold build {uuid.uuid4()} */\n")
    out = root / "out"
    return catalog, out, _build(catalog, out)


def _elf_machine(data: bytes) -> int:
    assert data[:4] == b"\x7fELF"
    return int.from_bytes(data[18:20], "little")


def test_demo_wheel_is_aarch64(first_build: tuple[Path, Path, dict[str, object]]) -> None:
    _, _, report = first_build
    wheels = [Path(w) for w in report["wheels"]]  # type: ignore[union-attr]
    assert len(wheels) == 1
    wheel = wheels[0]
    assert wheel.name.startswith("farm_demo-0.1.0-cp311-cp311-linux_aarch64")
    with zipfile.ZipFile(wheel) as archive:
        (extension,) = [n for n in archive.namelist() if n.endswith(".so")]
        assert _elf_machine(archive.read(extension)) == ELF_MACHINE_AARCH64
        assert (
            "Tag: cp311-cp311-linux_aarch64"
            in archive.read("farm_demo-0.1.0.dist-info/WHEEL").decode()
        )


def test_job_directory_holds_log_script_and_record(
    first_build: tuple[Path, Path, dict[str, object]],
) -> None:
    _, _, report = first_build
    job_dir = Path(str(report["job_dir"]))
    record = json.loads((job_dir / "build.json").read_text())
    assert record["result"] == "passed" and record["build_key"] == report["build_key"]
    assert (job_dir / "Dockerfile").read_text().startswith("# demo 0.1.0 for bookworm-arm64")
    assert "docker" in (job_dir / "build.sh").read_text()
    assert (job_dir / "build.log").stat().st_size > 0
    assert not list(job_dir.glob(".partial-*"))


def test_a_second_build_does_no_work_and_force_reuses_buildkits_cache(
    first_build: tuple[Path, Path, dict[str, object]],
) -> None:
    catalog, out, first = first_build
    second = _build(catalog, out)
    assert second["build_key"] == first["build_key"]
    states = {stage["stage"]: stage["state"] for stage in second["stages"]}  # type: ignore[union-attr]
    assert states == dict.fromkeys(("build", "repair", "inspect", "smoke"), "skipped")
    forced = _build(catalog, out, "--force")
    print(f"demo pipeline: cold {first['duration_s']} s, forced warm {forced['duration_s']} s")
    assert {stage["state"] for stage in forced["stages"]} == {"ran"}  # type: ignore[union-attr]
    assert float(forced["duration_s"]) < float(first["duration_s"])  # type: ignore[arg-type]
    log = (Path(str(forced["job_dir"])) / "build.log").read_text()
    assert "CACHED" in log


def test_failing_step_names_the_step_and_log(first_build: object, tmp_path: Path) -> None:
    catalog = demo_catalog(tmp_path, f"\nthis is not C {uuid.uuid4().hex};\n")
    out = tmp_path / "out"
    result = run_farm(
        "--recipes",
        str(catalog),
        "build",
        "demo",
        "--target",
        "bookworm-arm64",
        "--output-dir",
        str(out),
    )
    assert result.returncode == 1
    error = [line for line in result.stderr.splitlines() if line.startswith("farm: error:")]
    assert len(error) == 1 and "build step failed" in error[0] and "build.log" in error[0]
    assert not list(out.rglob("*.whl"))
    (record,) = list(out.rglob("build.json"))
    assert json.loads(record.read_text())["result"] == "failed"


def test_onnxruntime_jetpack6_dry_run_shows_the_production_build(tmp_path: Path) -> None:
    result = run_farm(
        "build",
        "onnxruntime-gpu",
        "--target",
        "jetpack6",
        "--dry-run",
        "--output-dir",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "# base image: nvcr.io/nvidia/l4t-jetpack:r36.4.0 (linux/arm64)" in result.stdout
    assert "--use_tensorrt" in result.stdout and "CMAKE_CUDA_ARCHITECTURES=87" in result.stdout
    build_line = next(line for line in result.stdout.splitlines() if line.startswith("+ "))
    assert "build --platform linux/arm64" in build_line and "--target wheels" in build_line
    assert "--output type=local" in build_line
    assert not list(tmp_path.iterdir())  # a dry run writes nothing


def test_missing_base_image_is_named(host_ready: object, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    (catalog / "targets").mkdir(parents=True)
    target = (REPO / "recipes" / "targets" / "jetpack6.yaml").read_text()
    (catalog / "targets" / "jetpack6.yaml").write_text(
        target.replace(
            "reference: nvcr.io/nvidia/l4t-jetpack:r36.4.0",
            "reference: farm.local/l4t-jetpack-absent:r36.4.0",
        )
    )
    result = run_farm(
        "--recipes",
        str(catalog),
        "build",
        "onnxruntime-gpu",
        "--target",
        "jp6",
        "--output-dir",
        str(tmp_path / "out"),
        timeout=300,
    )
    assert result.returncode == 3, result.stderr[-2000:]
    error = [line for line in result.stderr.splitlines() if line.startswith("farm: error:")]
    assert error == [error[0]]
    assert (
        "base image farm.local/l4t-jetpack-absent:r36.4.0 is neither present nor pullable"
        in error[0]
    )
    assert not list((tmp_path / "out").rglob("*.whl"))


def test_build_repairs_to_the_target_tag_with_libzstd_grafted(
    first_build: tuple[Path, Path, dict[str, object]],
) -> None:
    _, _, report = first_build
    (repaired,) = [Path(w) for w in report["repaired"]]  # type: ignore[union-attr]
    assert "manylinux_2_36_aarch64" in repaired.name
    with zipfile.ZipFile(repaired) as archive:
        grafted = [n for n in archive.namelist() if n.startswith("farm_demo.libs/libzstd")]
        assert len(grafted) == 1
        assert _elf_machine(archive.read(grafted[0])) == ELF_MACHINE_AARCH64
    record = json.loads((repaired.parent / "repair.json").read_text())
    assert record["result"] == "passed"
    assert record["size_after"] > record["size_before"]
    inspected = json.loads((repaired.parent / "inspect.json").read_text())
    assert inspected["compatible"] is True and inspected["problems"] == []


def test_unrepaired_demo_wheel_is_reported_as_needing_libzstd(
    first_build: tuple[Path, Path, dict[str, object]],
) -> None:
    _, _, report = first_build
    (wheel,) = report["wheels"]  # type: ignore[misc]
    result = run_farm("inspect", str(wheel), "--target", "bookworm-arm64", "--json")
    assert result.returncode == 1
    (problem,) = json.loads(result.stdout)["problems"]
    assert problem.startswith("_zstd.cpython-311-aarch64-linux-gnu.so needs libzstd.so.1")
