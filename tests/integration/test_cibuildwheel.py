"""The cibuildwheel build kind for real: lru-dict's PyPI sdist, which carries its own
``[tool.cibuildwheel]`` settings (test-extras, test-sources, test-command), built by
cibuildwheel under QEMU in the image the farm derives from bookworm-arm64, then repaired,
inspected, smoke-tested, published to the embedded registry and installed back from it.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from farm.ledger import Ledger
from tests.integration.test_faults import Farm as Background
from tests.integration.test_faults import containers, error_lines, eventually
from tests.integration.test_pipeline import Farm, _farm

pytestmark = pytest.mark.integration

PACKAGE, TARGET = "lru-dict", "bookworm-arm64"
STAGES = ("build", "repair", "inspect", "smoke", "publish", "install")


@pytest.fixture(scope="module")
def farm(host_ready: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    yield from _farm(tmp_path_factory.mktemp("cibuildwheel"))


@pytest.fixture(scope="module")
def published(farm: Farm) -> dict[str, object]:
    """The README's pipeline with a cibuildwheel recipe: build to install from the index."""
    result = farm.run("build", PACKAGE, "--target", TARGET, "--publish", "local", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    document: dict[str, object] = json.loads(result.stdout)
    return document


def _job_dir(farm: Farm) -> Path:
    (directory,) = (farm.out / PACKAGE / TARGET).iterdir()
    return directory


def test_the_cibuildwheel_wheel_goes_all_the_way_to_an_install_from_the_index(
    farm: Farm, published: dict[str, object]
) -> None:
    stages = {s["stage"]: s for s in published["stages"]}  # type: ignore[union-attr]
    assert {name: stage["state"] for name, stage in stages.items()} == dict.fromkeys(STAGES, "ran")
    wheel = Path(str(published["wheel"]))
    assert wheel.name.startswith("lru_dict-1.4.1-cp311-cp311-")
    assert wheel.name.endswith("manylinux_2_36_aarch64.whl")  # the farm's repair, not cibw's
    assert farm.packages == [wheel.name]
    assert "sha256 matches" in stages["install"]["detail"]
    entry = Ledger(farm.state).get(str(published["build_key"]))
    assert entry is not None and entry.passed("install", "local")


def test_the_packages_own_cibuildwheel_tests_ran_in_the_build(
    farm: Farm, published: dict[str, object]
) -> None:
    directory = _job_dir(farm)
    log = (directory / "build.log").read_text()
    assert "Testing wheel..." in log
    assert "+ sh -c 'python -m pytest -v'" in log  # lru-dict's test-command, unchanged
    assert re.search(r"=+ \d+ passed", log), log[-3000:]
    record = json.loads((directory / "build.json").read_text())
    assert record["cibuildwheel"] == "4.3.5" and record["package_tests"] is True
    assert record["wheels"] == ["lru_dict-1.4.1-cp311-cp311-linux_aarch64.whl"]
    script = (directory / "build.sh").read_text()
    assert "CIBW_BUILD=cp311-manylinux_aarch64" in script and "-m cibuildwheel" in script


def test_cibuildwheels_containers_are_gone_after_the_build(published: dict[str, object]) -> None:
    result = subprocess.run(
        ["docker", "ps", "--all", "--filter", "label=farm.stage=build", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert [name for name in result.stdout.split() if name.startswith("cibuildwheel-")] == []


def test_sigterm_while_cibuildwheel_builds_removes_its_container(
    tmp_path: Path, published: dict[str, object]
) -> None:
    env = {"FARM_STATE_DIR": str(tmp_path / "state")}
    argv = ("build", PACKAGE, "--target", TARGET, "--output-dir", str(tmp_path / "out"))
    farm = Background(tmp_path, *argv, env=env)
    # The derived image is cached by now: cibuildwheel's container comes within minutes.
    farm.wait_for("cibuildwheel's container", lambda: bool(containers(farm.pid, "build")))
    code, stderr = farm.stop(signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, stderr[-3000:]
    (line,) = error_lines(stderr)
    assert line.startswith(f"farm: error: stopped by SIGTERM while building {PACKAGE} 1.4.1")
    assert eventually(lambda: not containers(farm.pid), timeout=60), containers(farm.pid)
    assert not list((tmp_path / "out").glob(f"{PACKAGE}/{TARGET}/*/wheels"))


def test_cross_is_refused_in_one_line_before_anything_runs(farm: Farm) -> None:
    result = farm.run("build", PACKAGE, "--target", TARGET, "--strategy", "cross")
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        f"farm: error: {PACKAGE} builds with cibuildwheel, which runs emulated only: "
        "--strategy cross is not possible"
    ]
