"""The installed ``farm`` console script, run as a user runs it, from outside the checkout."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def farm() -> str:
    path = shutil.which("farm")
    if path is None:
        pytest.fail("the farm console script is not installed in this environment")
    return path


def _farm(farm: str, cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [farm, *argv], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_help_teaches_the_workflow(farm: str, tmp_path: Path) -> None:
    result = _farm(farm, tmp_path, "--help")
    assert result.returncode == 0
    assert "farm plan onnxruntime-gpu --target jetpack6" in result.stdout


def test_plan_json_from_any_directory(farm: str, tmp_path: Path) -> None:
    result = _farm(farm, tmp_path, "plan", "onnxruntime-gpu", "--target", "jetpack5", "--json")
    assert result.returncode == 0, result.stderr
    (job,) = json.loads(result.stdout)["jobs"]
    assert "CMAKE_CUDA_ARCHITECTURES=72;87" in job["build_command"]


def test_plan_output_is_stable_across_processes(farm: str, tmp_path: Path) -> None:
    argv = (
        "plan",
        "onnxruntime-gpu",
        "--target",
        "jp6",
        "--json",
        "--builder-cpus",
        "8",
        "--builder-memory",
        "32",
    )
    first, second = _farm(farm, tmp_path, *argv), _farm(farm, tmp_path, *argv)
    assert first.stdout == second.stdout
    assert json.loads(first.stdout)["jobs"][0]["build_command"].count("--parallel") == 1


def test_error_is_one_line_without_traceback(farm: str, tmp_path: Path) -> None:
    result = _farm(
        farm, tmp_path, "plan", "onnxruntime-gpu", "--target", "jetpack6", "--version", "1.24.1"
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "python >=3.11" in result.stderr


def test_render_piped_to_a_closed_reader(farm: str, tmp_path: Path) -> None:
    render = subprocess.Popen(
        [farm, "render", "onnxruntime-gpu", "--target", "jp6"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert render.stdout is not None and render.stderr is not None
    first = render.stdout.readline()
    render.stdout.close()
    err = render.stderr.read().decode()
    render.wait(timeout=60)
    assert first.startswith(b"# onnxruntime-gpu")
    assert "Traceback" not in err
