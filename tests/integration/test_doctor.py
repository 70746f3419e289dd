from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.integration.conftest import run_farm

pytestmark = pytest.mark.integration
ENTRY = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")


def test_doctor_passes_on_the_prepared_host(host_ready: dict[str, object]) -> None:
    result = run_farm("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok   qemu: QEMU" in result.stdout
    assert "ok   buildkit" in result.stdout


def test_the_run_uses_the_buildkit_client_it_asked_for(host_ready: dict[str, object]) -> None:
    """nox runs the integration tests once per client (FARM_ENGINE); each really built with it."""
    wanted = os.environ.get("FARM_ENGINE")
    checks = {check["name"]: check for check in host_ready["checks"]}  # type: ignore[attr-defined]
    engine = checks["engine"]["detail"]
    if wanted == "classic":
        assert engine.startswith("classic docker client with DOCKER_BUILDKIT=1"), engine
    elif wanted == "buildx":
        assert engine.startswith("docker buildx"), engine
        assert checks["buildx"]["status"] == "ok", checks["buildx"]
    assert checks["buildkit"]["status"] == "ok", checks["buildkit"]


@pytest.mark.skipif(os.geteuid() != 0, reason="toggling binfmt_misc needs root")
def test_doctor_fails_with_the_fix_when_binfmt_is_disabled(host_ready: dict[str, object]) -> None:
    ENTRY.write_text("0")
    try:
        result = run_farm("doctor", "--json")
        human = run_farm("doctor")
    finally:
        ENTRY.write_text("1")
    assert result.returncode == 3
    (binfmt,) = [c for c in json.loads(result.stdout)["checks"] if c["name"] == "binfmt"]
    assert binfmt["status"] == "fail"
    assert binfmt["fix"] == f"echo 1 > {ENTRY}"
    assert f"fix: echo 1 > {ENTRY}" in human.stdout
    assert run_farm("doctor").returncode == 0


def test_build_refuses_to_start_when_the_daemon_is_unreachable(tmp_path: Path) -> None:
    result = run_farm(
        "build",
        "demo",
        "--target",
        "bookworm-arm64",
        "--output-dir",
        str(tmp_path),
        env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"},
    )
    assert result.returncode == 3
    assert result.stderr.startswith("farm: error: docker daemon not reachable")
    assert "host-setup" in result.stderr
    assert not list(tmp_path.rglob("*.whl"))
