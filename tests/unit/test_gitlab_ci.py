"""The nightly GitLab pipeline: valid for GitLab's schema, and wired to the farm's commands."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from farm.catalog import Catalog
from farm.nightly import Release, expand
from farm.registries import GitlabRegistry, load_config, locate
from farm.resources import BuilderResources

REPO = Path(__file__).resolve().parents[2]
CI_FILE = REPO / ".gitlab-ci.yml"


def _schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.gitlab-ci",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_pipeline_passes_gitlabs_ci_schema() -> None:
    result = _schema_check(CI_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_catches_a_broken_pipeline(tmp_path: Path) -> None:
    broken = tmp_path / ".gitlab-ci.yml"
    broken.write_text(CI_FILE.read_text().replace("  parallel:\n", "  parallel: many\n  x:\n", 1))
    assert _schema_check(broken).returncode != 0


@pytest.fixture(scope="module")
def pipeline() -> dict[str, object]:
    return yaml.safe_load(CI_FILE.read_text())


def test_nightly_schedule_and_stages(pipeline: dict[str, object]) -> None:
    assert pipeline["stages"] == ["plan", "build", "publish", "report"]
    rules = pipeline["workflow"]["rules"]  # type: ignore[index]
    assert {"if": '$CI_PIPELINE_SOURCE == "schedule"'} in rules


def test_one_build_job_per_jetson_target(pipeline: dict[str, object], catalog: Catalog) -> None:
    build = pipeline["build"]
    (matrix,) = build["parallel"]["matrix"]  # type: ignore[index]
    nightly = catalog.recipes["onnxruntime-gpu"].model.nightly_targets
    assert matrix["TARGET"] == list(nightly)
    assert any("host-setup.sh" in line for line in pipeline[".emulation"]["before_script"])  # type: ignore[index]
    assert any("--no-publish" in line for line in build["script"])  # type: ignore[index]
    assert "out/" in build["artifacts"]["paths"]  # type: ignore[index]


def test_publish_goes_to_this_projects_registry_with_the_job_token(
    pipeline: dict[str, object],
) -> None:
    assert any("--no-build" in line for line in pipeline["publish"]["script"])  # type: ignore[index]
    environ = {
        "CI_SERVER_URL": "https://gitlab.example.com",
        "CI_PROJECT_ID": "1234",
        "CI_PROJECT_NAMESPACE": "robots/jetson",
    }
    config = load_config(REPO / "ci" / "farm.toml", environ=environ, cwd=REPO)
    profile = config.profile(pipeline["variables"]["FARM_REGISTRY"])  # type: ignore[index]
    assert isinstance(profile, GitlabRegistry)
    location = locate("gitlab", profile, None)
    assert location.upload_url == "https://gitlab.example.com/api/v4/projects/1234/packages/pypi"
    assert location.read_url.endswith("/groups/robots%2Fjetson/-/packages/pypi/simple/")


def test_pages_publishes_the_html_report(pipeline: dict[str, object]) -> None:
    pages = pipeline["pages"]
    assert pages["artifacts"]["paths"] == ["public"]  # type: ignore[index]
    assert "farm report --html public" in pages["script"]  # type: ignore[index]


def _seconds(duration: str) -> int:
    """A GitLab duration ("4h", "3h 30m") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)\s*([hms])", duration))


# Images, repair, inspect and smoke around the compile: the stand-in's onnxruntime run took
# about 8 minutes for them on a warm machine; a cold runner pulls NVIDIA's images first.
STAGES_S = 3600


def test_the_build_jobs_limit_is_sized_from_the_plan(
    pipeline: dict[str, object], catalog: Catalog, ci_runner: BuilderResources
) -> None:
    recipe = catalog.recipes["onnxruntime-gpu"].model
    newest = recipe.sorted_versions()[0]
    release = Release(package=recipe.name, upstream=newest, source="recipe", chosen=newest)
    cells = expand(catalog, release, targets=(), resources=ci_runner)
    estimates = [cell.job.estimate for cell in cells if cell.job is not None]
    assert len(estimates) == len(recipe.nightly_targets)
    assert all(e is not None and e.strategy == "cross" for e in estimates)
    longest = max(e.wall_s for e in estimates if e is not None)
    limit = _seconds(str(pipeline["build"]["timeout"]))  # type: ignore[index]
    # Room for a runner twice as slow as the measured one, and not the day an emulated
    # CUDA compile would take.
    assert 2 * longest + STAGES_S <= limit <= 4 * longest + STAGES_S, (longest, limit)
