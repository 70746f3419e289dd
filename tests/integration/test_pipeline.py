"""The whole pipeline for real: farm build --publish local, farm nightly and farm report.

The demo package is built under QEMU, repaired, smoke-tested, published to the
embedded pypiserver and installed back from it in a fresh arm64 container.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from farm.ledger import Ledger
from tests.integration.conftest import REPO, run_farm
from tests.integration.test_build import demo_catalog

pytestmark = pytest.mark.integration


@dataclass
class Farm:
    """One state directory with its own running local registry, and an output directory."""

    env: dict[str, str]
    state: Path
    out: Path

    @property
    def packages(self) -> list[str]:
        return sorted(path.name for path in (self.state / "registry" / "packages").iterdir())

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return run_farm(*argv, env=self.env)


def _farm(root: Path) -> Iterator[Farm]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    farm = Farm(
        env={
            "FARM_STATE_DIR": str(root / "state"),
            "FARM_OUTPUT_DIR": str(root / "out"),
            "FARM_PUBLISH_BACKOFF_S": "0.1",
        },
        state=root / "state",
        out=root / "out",
    )
    started = farm.run("registry", "serve", "--detach", "--port", str(port))
    assert started.returncode == 0, started.stderr
    try:
        yield farm
    finally:
        farm.run("registry", "stop")


@pytest.fixture(scope="module")
def farm(host_ready: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    yield from _farm(tmp_path_factory.mktemp("pipeline"))


@pytest.fixture(scope="module")
def first_run(farm: Farm) -> dict[str, object]:
    """The README's main job: the demo built, smoke-tested, published and installed back."""
    result = farm.run("build", "demo", "--target", "bookworm-arm64", "--publish", "local", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def _states(document: dict[str, object]) -> dict[str, str]:
    return {stage["stage"]: stage["state"] for stage in document["stages"]}  # type: ignore[union-attr]


def test_the_demo_goes_all_the_way_to_an_install_from_the_index(
    farm: Farm, first_run: dict[str, object]
) -> None:
    assert _states(first_run) == dict.fromkeys(
        ("build", "repair", "inspect", "smoke", "publish", "install"), "ran"
    )
    wheel = Path(str(first_run["wheel"]))
    assert farm.packages == [wheel.name]
    assert "manylinux_2_36_aarch64" in wheel.name
    (install,) = [s for s in first_run["stages"] if s["stage"] == "install"]  # type: ignore[union-attr]
    assert "sha256 matches" in install["detail"]
    entry = Ledger(farm.state).get(str(first_run["build_key"]))
    assert entry is not None and entry.passed("install", "local")


def test_a_second_run_does_no_work_and_says_why(farm: Farm, first_run: dict[str, object]) -> None:
    again = farm.run("build", "demo", "--target", "bookworm-arm64", "--publish", "local", "--json")
    assert again.returncode == 0, again.stderr
    document = json.loads(again.stdout)
    assert set(_states(document).values()) == {"skipped"}
    assert "nothing to do: every stage of key" in again.stderr
    assert "build: skipped, built for key" in again.stderr
    assert "publish: skipped" in again.stderr and "already in local" in again.stderr


def test_nightly_builds_nothing_when_the_registry_has_everything(
    farm: Farm, first_run: dict[str, object]
) -> None:
    result = farm.run("nightly", "--registry", "local", "--package", "demo", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    (cell,) = document["matrix"]
    assert cell["state"] == "skip" and cell["build_key"] == first_run["build_key"]
    assert document["built"] == 0 and document["runs"] == []


def test_the_report_shows_every_stage_as_json_and_html(
    farm: Farm, first_run: dict[str, object], tmp_path: Path
) -> None:
    result = farm.run("report", "--json", "--html", str(tmp_path / "public"))
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["schema_version"] == 1
    (row,) = document["rows"]
    assert row["stages"]["install"]["registries"] == ["local"]
    assert all(row["stages"][stage]["result"] == "passed" for stage in document["stages"])
    assert row["size"] > 100_000
    page = (tmp_path / "public" / "index.html").read_text()
    assert Path(str(first_run["wheel"])).name in page and 'class="passed"' in page
    assert json.loads((tmp_path / "public" / "report.json").read_text())["rows"] == document["rows"]


def test_a_rebuild_after_publishing_gets_the_next_build_number(
    farm: Farm, first_run: dict[str, object], tmp_path: Path
) -> None:
    catalog = demo_catalog(tmp_path, f"\n/* a fix {uuid.uuid4()} */\n")
    result = farm.run(
        "--recipes", str(catalog), "build", "demo", "--target", "bookworm-arm64",
        "--publish", "local", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    document = json.loads(result.stdout)
    assert document["build_key"] != first_run["build_key"]
    renumbered = Path(str(document["wheel"])).name
    assert renumbered == Path(str(first_run["wheel"])).name.replace("-0.1.0-", "-0.1.0-1-")
    assert "publishing it as build 1" in result.stderr
    assert renumbered in farm.packages and len(farm.packages) == 2
    # Only what was published is kept, beside the job; no candidate is left anywhere.
    job_dir = Path(document["job_dir"])
    assert Path(str(document["wheel"])) == job_dir / "renumbered" / renumbered
    assert [path.name for path in (job_dir / "renumbered").iterdir()] == [renumbered]
    assert not list(job_dir.glob(".candidates-*"))
    assert _states(document)["install"] == "ran"  # pip picked build 1 and its hash matched


def test_a_smoke_failure_stops_the_wheel_before_publishing(
    host_ready: object, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog"
    (catalog / "packages").mkdir(parents=True)
    recipe = (REPO / "recipes" / "packages" / "demo.yaml").read_text()
    recipe = recipe.replace("path: ../../demo", f"path: {REPO / 'demo'}")
    recipe = recipe.replace(
        "    import farm_demo\n", "    import farm_demo\n    assert 1 == 2, 'broken on purpose'\n"
    )
    (catalog / "packages" / "demo.yaml").write_text(recipe)
    for farm in _farm(tmp_path):
        result = farm.run(
            "--recipes", str(catalog), "build", "demo", "--target", "bookworm-arm64",
            "--publish", "local", "--json",
        )  # fmt: skip
        assert result.returncode == 1
        errors = [line for line in result.stderr.splitlines() if line.startswith("farm: error:")]
        assert len(errors) == 1 and "smoke check script failed" in errors[0]
        assert "broken on purpose" in errors[0]
        states = _states(json.loads(result.stdout))
        assert states["smoke"] == "failed" and "publish" not in states
        assert farm.packages == []


def test_a_second_farm_on_the_same_state_directory_is_refused(tmp_path: Path) -> None:
    env = {"FARM_STATE_DIR": str(tmp_path)}
    with Ledger(tmp_path).locked("farm nightly"):
        result = run_farm("build", "demo", "--target", "bookworm-arm64", env=env)
    assert result.returncode == 3
    assert f"is in use by pid {os.getpid()} (farm nightly" in result.stderr
    assert shutil.which("farm") and sys.executable  # the installed farm ran, not a stub


def test_a_failing_nightly_build_does_not_stop_the_others(
    host_ready: object, tmp_path: Path
) -> None:
    catalog = demo_catalog(tmp_path, f"\nthis is not C {uuid.uuid4().hex};\n")
    broken = (catalog / "packages" / "demo.yaml").read_text()
    (catalog / "packages" / "demo-broken.yaml").write_text(
        broken.replace("name: demo\n", "name: demo-broken\n")
    )
    (catalog / "packages" / "demo.yaml").unlink()  # the built-in demo stays, unbroken
    for farm in _farm(tmp_path / "farm"):
        result = farm.run(
            "--recipes", str(catalog), "nightly", "--registry", "local",
            "--package", "demo-broken", "--package", "demo", "--json",
        )  # fmt: skip
        assert result.returncode == 1
        runs = {run["package"]: run for run in json.loads(result.stdout)["runs"]}
        assert runs["demo-broken"]["ok"] is False
        assert "build step failed" in runs["demo-broken"]["error"]
        assert runs["demo"]["ok"] is True
        assert [name for name in farm.packages if name.startswith("farm_demo-0.1.0")]
