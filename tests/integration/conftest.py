"""Integration tests run the installed farm against the real docker engine and QEMU.

They need the host prepared by scripts/host-setup.sh (``.ci/run`` does it).
They fail, not skip, when the host is not ready: a skipped integration test
would let CI pass without exercising anything real.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def farm_command() -> str:
    path = shutil.which("farm")
    if path is None:
        pytest.fail("the farm console script is not installed in this environment")
    return path


def run_farm(
    *argv: str, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float = 1800
) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [farm_command(), *argv],
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )


def build_through_smoke(tmp_path: Path, *argv: str) -> dict[str, Any]:
    """`farm build ARGV --json` in a fresh state directory; every stage to smoke must run."""
    env = {"FARM_STATE_DIR": str(tmp_path / "state")}
    result = run_farm("build", *argv, "--output-dir", str(tmp_path / "out"), "--json", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    document: dict[str, Any] = json.loads(result.stdout)
    states = {stage["stage"]: stage["state"] for stage in document["stages"]}
    assert states == dict.fromkeys(("build", "repair", "inspect", "smoke"), "ran")
    return document


def onnxruntime_aarch64_wheel(version: str, python: str, project: str = "onnxruntime") -> Path:
    """onnxruntime's (or onnxruntime-gpu's) aarch64 wheel from PyPI for ``python``, kept in
    the farm cache."""
    from farm.settings import Settings

    directory = Settings.from_environ(os.environ).cache_dir / "test-wheels"
    prefix = project.replace("-", "_")
    pattern = f"{prefix}-{version}-cp{python.replace('.', '')}-*manylinux*_aarch64.whl"
    if not sorted(directory.glob(pattern)):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                # onnxruntime-gpu 1.31 is manylinux_2_34; older CPU releases (1.16) are
                # manylinux2014 only.
                *("--platform", "manylinux_2_34_aarch64"),
                *("--platform", "manylinux_2_28_aarch64"),
                *("--platform", "manylinux2014_aarch64"),
                "--python-version",
                python,
                f"{project}=={version}",
                "--dest",
                str(directory),
            ],
            check=True,
            timeout=600,
        )
    return sorted(directory.glob(pattern))[0]


@pytest.fixture(scope="session", autouse=True)
def isolated_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every farm the tests run keeps its ledger and local registry in a fresh state directory."""
    import os

    state = tmp_path_factory.mktemp("farm-state")
    os.environ["FARM_STATE_DIR"] = str(state)
    return state


@pytest.fixture(scope="session")
def host_ready() -> dict[str, object]:
    result = run_farm("doctor", "--json", timeout=300)
    report = json.loads(result.stdout)
    failed = [
        f"{c['name']}: {c['detail']} (fix: {c['fix']})"
        for c in report["checks"]
        if c["status"] == "fail"
    ]
    if failed:
        pytest.fail(
            "host not ready for integration tests; run scripts/host-setup.sh: " + "; ".join(failed)
        )
    return report
