"""A damaged ledger file met by the runner or the nightly: taken as absent, and said so."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from farm import console
from farm.catalog import Catalog
from farm.engine import Engine
from farm.ledger import Ledger
from farm.nightly import MatrixCell, mark_published
from farm.pipeline import PipelineOptions, Runner
from farm.plan import BuildJob, plan_job
from farm.resources import BuilderResources


def _damaged(
    catalog: Catalog, tmp_path: Path, resources: BuilderResources
) -> tuple[BuildJob, Ledger]:
    job = plan_job(catalog, "demo", "bookworm-arm64", resources=resources)
    ledger = Ledger(tmp_path / "state")
    ledger.root.mkdir(parents=True)
    ledger.path(job.build_key).write_text('{"schema_version": 1, "build_key": "')
    return job, ledger


def test_the_runner_starts_afresh_and_says_why(
    catalog: Catalog, tmp_path: Path, ci_runner: BuilderResources
) -> None:
    job, ledger = _damaged(catalog, tmp_path, ci_runner)
    said: list[str] = []
    options = PipelineOptions(out_root=tmp_path / "out", cache_dir=tmp_path / "cache")
    runner = Runner(job, cast(Engine, None), ledger, options, console.section, said.append)
    assert runner.entry.build_key == job.build_key and runner.entry.stages == {}
    (line,) = said
    assert line.startswith(f"warning: {ledger.path(job.build_key)}: not JSON (")
    assert line.endswith("taken as absent, so every stage runs again")


def test_the_nightly_does_not_count_it_as_published(
    catalog: Catalog, tmp_path: Path, ci_runner: BuilderResources
) -> None:
    job, ledger = _damaged(catalog, tmp_path, ci_runner)
    cell = MatrixCell(
        package="demo",
        version=job.spec.version,
        target="bookworm-arm64",
        python=job.spec.python,
        state="build",
        reason="not built yet",
        job=job,
    )
    mark_published([cell], ledger, "local", lambda project, name: {})
    assert (cell.state, cell.reason) == ("build", "not built yet")
