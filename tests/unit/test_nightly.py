"""The nightly's decisions: which release, which cells, which are already published."""

from __future__ import annotations

from pathlib import Path

from farm.catalog import Catalog
from farm.ledger import Ledger
from farm.nightly import Release, expand, mark_published, newest_release
from farm.pipeline import new_entry
from farm.resources import BuilderResources


def _demo_release(catalog: Catalog) -> Release:
    return newest_release(catalog.recipe("demo").model)


def test_a_path_source_builds_the_newest_listed_version(catalog: Catalog) -> None:
    release = _demo_release(catalog)
    assert (release.upstream, release.chosen, release.note) == ("0.1.0", "0.1.0", None)
    assert release.source == "the recipe's versions"


def test_the_matrix_plans_each_python_of_each_nightly_target(
    catalog: Catalog, ci_runner: BuilderResources
) -> None:
    cells = expand(catalog, _demo_release(catalog), targets=(), resources=ci_runner)
    assert [(cell.target, cell.python, cell.state) for cell in cells] == [
        ("bookworm-arm64", "3.11", "build")
    ]
    assert cells[0].job is not None and cells[0].reason == "not built yet"


def _published(
    catalog: Catalog, ci_runner: BuilderResources, tmp_path: Path, sha256: str
) -> tuple[list, Ledger]:  # type: ignore[type-arg]
    cells = expand(catalog, _demo_release(catalog), targets=(), resources=ci_runner)
    job = cells[0].job
    assert job is not None
    ledger = Ledger(tmp_path)
    entry = new_entry(job, tmp_path / "job")
    entry.record("publish", "passed", 1.0, "local", wheel="farm_demo-0.1.0-x.whl", sha256=sha256)
    ledger.save(entry)
    return cells, ledger


def test_a_cell_is_skipped_only_when_the_index_still_holds_the_same_bytes(
    catalog: Catalog, ci_runner: BuilderResources, tmp_path: Path
) -> None:
    asked: list[tuple[str, str]] = []

    def index(project: str, filename: str) -> dict[str, str | None]:
        asked.append((project, filename))
        return {"farm_demo-0.1.0-x.whl": "a" * 64}

    cells, ledger = _published(catalog, ci_runner, tmp_path, "a" * 64)
    mark_published(cells, ledger, "local", index)
    assert (cells[0].state, cells[0].reason) == ("skip", "farm_demo-0.1.0-x.whl is in local")
    assert asked == [("farm-demo", "farm_demo-0.1.0-x.whl")]

    cells, ledger = _published(catalog, ci_runner, tmp_path, "b" * 64)
    mark_published(cells, ledger, "local", index)
    assert cells[0].state == "build"
    assert cells[0].reason == "recorded as published, but local does not list it now"


def test_another_registry_is_not_taken_for_this_one(
    catalog: Catalog, ci_runner: BuilderResources, tmp_path: Path
) -> None:
    cells, ledger = _published(catalog, ci_runner, tmp_path, "a" * 64)
    mark_published(cells, ledger, "gitlab", lambda project, name: {name: "a" * 64})
    assert cells[0].state == "build"


def _onnxruntime_release() -> Release:
    return Release(
        package="onnxruntime-gpu", upstream="1.32.0", source="PyPI onnxruntime", chosen="1.31.1"
    )


def test_each_target_gets_the_newest_version_its_rules_allow(
    catalog: Catalog, ci_runner: BuilderResources
) -> None:
    cells = expand(catalog, _onnxruntime_release(), targets=(), resources=ci_runner)
    chosen = {cell.target: (cell.version, cell.state) for cell in cells}
    assert chosen == {
        "jetpack5": ("1.17.3", "build"),
        "jetpack6": ("1.23.2", "build"),
        "jetpack7": ("1.31.1", "build"),
    }
    why = {cell.target: cell.chosen_because or "" for cell in cells}
    assert why["jetpack7"] == "newest release"
    assert why["jetpack6"].startswith("newest for jetpack6; onnxruntime-gpu 1.31.1 needs python")
    assert "cudnn" in why["jetpack5"]
    assert all(cell.job is not None and cell.job.spec.version == cell.version for cell in cells)
    assert cells[1].to_json()["chosen_because"] == why[cells[1].target]


def test_a_target_no_listed_version_fits_is_dropped_with_the_rule(
    catalog: Catalog, ci_runner: BuilderResources
) -> None:
    (cell,) = expand(
        catalog, _onnxruntime_release(), targets=("bookworm-arm64",), resources=ci_runner
    )
    assert (cell.state, cell.version, cell.job) == ("dropped", "1.31.1", None)
    assert cell.reason == "onnxruntime-gpu needs a target with cuda; bookworm-arm64 has none"


def test_no_version_above_the_release_is_built(
    catalog: Catalog, ci_runner: BuilderResources
) -> None:
    release = Release(package="onnxruntime-gpu", upstream="1.22.0", source="x", chosen="1.22.0")
    cells = expand(catalog, release, targets=("jetpack6", "jetpack5"), resources=ci_runner)
    assert [(cell.target, cell.version) for cell in cells] == [
        ("jetpack6", "1.22.0"),
        ("jetpack5", "1.17.3"),
    ]
