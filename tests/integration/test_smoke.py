"""farm smoke for real: fresh aarch64 containers under QEMU, real installs, real checks."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.integration.conftest import REPO, onnxruntime_aarch64_wheel, run_farm

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo_wheel(host_ready: object, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("smoke-out")
    result = run_farm(
        "build", "demo", "--target", "bookworm-arm64", "--output-dir", str(out), "--json"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (repaired,) = json.loads(result.stdout)["repaired"]
    return Path(repaired)


@pytest.fixture(scope="module")
def ort_cpu_wheel(host_ready: object) -> Path:
    return onnxruntime_aarch64_wheel("1.31.1", "3.11")


def test_repaired_demo_passes_its_smoke_test(demo_wheel: Path) -> None:
    result = run_farm("smoke", str(demo_wheel), "--target", "bookworm-arm64", "--json")
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["passed"] is True
    assert [c["name"] for c in report["checks"]] == ["import", "script"]
    assert "zstd 1.5" in report["checks"][1]["detail"]
    record = json.loads((demo_wheel.parent / "smoke-bookworm-arm64.json").read_text())
    assert record["result"] == "passed"


def test_wrong_result_fails_and_names_the_check(demo_wheel: Path, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    (catalog / "packages").mkdir(parents=True)
    recipe = (REPO / "recipes" / "packages" / "demo.yaml").read_text()
    recipe = recipe.replace("path: ../../demo", f"path: {REPO / 'demo'}")
    recipe = recipe.replace(
        "assert farm_demo.decompress(frame) == payload",
        "assert farm_demo.decompress(frame) == payload + b'x', 'round trip'",
    )
    (catalog / "packages" / "demo.yaml").write_text(recipe)
    result = run_farm(
        "--recipes",
        str(catalog),
        "smoke",
        str(demo_wheel),
        "--target",
        "bookworm-arm64",
        "--output-dir",
        str(tmp_path),
    )
    assert result.returncode == 1
    error = [line for line in result.stderr.splitlines() if line.startswith("farm: error:")]
    assert error == [
        "farm: error: smoke check script failed on bookworm-arm64: AssertionError: round trip"
    ]


def test_pypi_onnxruntime_runs_real_inference_under_qemu(
    ort_cpu_wheel: Path, tmp_path: Path
) -> None:
    result = run_farm(
        "smoke",
        str(ort_cpu_wheel),
        "--target",
        "bookworm-arm64",
        "--json",
        "--output-dir",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    report = json.loads(result.stdout)
    # Python 3.11 has both NumPy majors: the inference runs under the newest of each.
    numpy = report["info"]["numpy"]
    assert numpy["2.x"].startswith("2.") and numpy["1.x"].startswith("1.26."), numpy
    checks = {c["name"]: c for c in report["checks"]}
    for version in numpy.values():
        inference = checks[f"inference numpy {version}"]
        assert inference["ok"] and "against numpy" in inference["detail"]
    assert report["info"]["version"] == "1.31.1"
    assert report["info"]["session_providers"] == ["CPUExecutionProvider"]


def test_a_wheel_built_for_numpy_1_fails_under_numpy_2_and_names_it(tmp_path: Path) -> None:
    # onnxruntime 1.16 predates NumPy 2: its extension loads, NumPy warns, and its first
    # array call crashes the interpreter (as 1.23.0's Jetson wheels did, onnxruntime#27562).
    wheel = onnxruntime_aarch64_wheel("1.16.3", "3.11")
    result = run_farm(
        "smoke", str(wheel), "--target", "bookworm-arm64", "--json", "--output-dir", str(tmp_path)
    )
    assert result.returncode == 1, result.stdout + result.stderr[-2000:]
    report = json.loads(result.stdout)
    numpy = report["info"]["numpy"]
    error = [line for line in result.stderr.splitlines() if line.startswith("farm: error:")]
    assert error == [
        f"farm: error: smoke check import numpy {numpy['2.x']} failed on bookworm-arm64: "
        f"onnxruntime 1.16.3 was compiled using NumPy 1.x and cannot be run in NumPy "
        f"{numpy['2.x']} (NumPy: it may crash)"
    ]
    checks = {c["name"]: c["ok"] for c in report["checks"]}
    assert checks[f"inference numpy {numpy['1.x']}"] is True


def test_missing_provider_fails(ort_cpu_wheel: Path, tmp_path: Path) -> None:
    result = run_farm(
        "smoke",
        str(ort_cpu_wheel),
        "--target",
        "bookworm-arm64",
        "--expect-provider",
        "TensorrtExecutionProvider",
        "--output-dir",
        str(tmp_path),
    )
    assert result.returncode == 1
    assert "smoke check providers failed on bookworm-arm64" in result.stderr
    assert "missing: TensorrtExecutionProvider" in result.stderr


def test_a_check_that_aborts_ends_at_once_naming_its_fatal_line_and_signal(
    demo_wheel: Path, tmp_path: Path
) -> None:
    """A crashing emulated process is never its container's PID 1 (the kernel would not
    deliver QEMU's self-raised SIGABRT to a namespace's init, and the container would idle
    until the time limit), and its core is not written: the check ends at once."""
    catalog = tmp_path / "catalog"
    (catalog / "packages").mkdir(parents=True)
    recipe = (REPO / "recipes" / "packages" / "demo.yaml").read_text()
    recipe = recipe.replace("path: ../../demo", f"path: {REPO / 'demo'}")
    script = recipe.index("  script: |")
    recipe = recipe[:script] + (
        "  script: |\n"
        "    import os, sys\n"
        "    print('[demo FATAL check.cc:12] CHECK failed: registry', file=sys.stderr)\n"
        "    sys.stderr.flush()\n"
        "    os.abort()\n"
    )
    (catalog / "packages" / "demo.yaml").write_text(recipe)
    limit = 600
    started = time.monotonic()
    result = run_farm(
        "--recipes", str(catalog), "smoke", str(demo_wheel), "--target", "bookworm-arm64",
        "--output-dir", str(tmp_path), "--timeout", str(limit), "--json",
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr[-2000:]
    assert elapsed < limit / 3, f"took {elapsed:.0f} s: the crashed check sat until its limit"
    (failed,) = [c for c in json.loads(result.stdout)["checks"] if not c["ok"]]
    assert failed["detail"] == (
        "[demo FATAL check.cc:12] CHECK failed: registry (ended by SIGABRT, exit 134)"
    )
    assert "SIGABRT" in result.stderr
