"""The runner's bookkeeping with every stage faked: what it skips, what it runs again, why.

The integration tests prove the same against the real engine, minutes per case; here each
stage is a recorder that writes a real wheel, so the ledger, the sha256 checks and the
invalidation rules are the real ones.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from farm import console, pipeline
from farm.catalog import Catalog
from farm.engine import Engine
from farm.errors import RepairFailed
from farm.ledger import Ledger
from farm.pipeline import PipelineOptions, PipelineResult, Runner
from farm.plan import BuildJob, plan_job
from farm.resources import BuilderResources
from farm.smoke import SmokeReport
from tests.registries.wheels import make_wheel


class Stages:
    """Fakes of build, repair, inspect and smoke that count their calls."""

    def __init__(self, tmp_path: Path, job: BuildJob) -> None:
        self.tmp_path, self.job = tmp_path, job
        self.calls: list[str] = []
        self.fail_repair = False

    def build(self, job: BuildJob, engine: Any, out_root: Path, *args: Any, **kw: Any) -> Any:
        self.calls.append("build")
        python = job.spec.python.replace(".", "")
        tag = f"cp{python}-cp{python}-linux_aarch64"
        wheel = make_wheel(out_root / "built", "farm-demo", job.spec.version, tag=tag)
        return SimpleNamespace(wheels=[wheel], log=wheel, duration_s=1.0, toolchain={})

    def repair(self, built: Path, target: Any, python: str, engine: Any, out: Path, *a: Any) -> Any:
        self.calls.append("repair")
        if self.fail_repair:
            raise RepairFailed("auditwheel said no")
        out.mkdir(parents=True, exist_ok=True)
        repaired = out / built.name.replace("linux_aarch64", target.manylinux_tag)
        shutil.copyfile(built, repaired)
        return SimpleNamespace(wheel=repaired, size_before=1, size_after=1)

    def inspect(self, *args: Any) -> Any:
        self.calls.append("inspect")
        return SimpleNamespace(compatible=True, problems=[], to_json=dict)

    def smoke(self, wheel: Path, target: Any, *args: Any, **kwargs: Any) -> SmokeReport:
        self.calls.append("smoke")
        return SmokeReport(
            wheel=wheel.name,
            target=target.name,
            passed=True,
            checks=[],
            info={},
            environment="cached",
            duration_s=0.0,
        )


@pytest.fixture
def job(catalog: Catalog, ci_runner: BuilderResources) -> BuildJob:
    return plan_job(catalog, "demo", "bookworm-arm64", resources=ci_runner)


@pytest.fixture
def stages(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, job: BuildJob) -> Stages:
    fakes = Stages(tmp_path, job)
    for name, fake in (
        ("images_for", lambda *args: []),
        ("run_build", fakes.build),
        ("run_repair", fakes.repair),
        ("inspect_wheel", fakes.inspect),
        ("run_smoke", fakes.smoke),
    ):
        monkeypatch.setattr(pipeline, name, fake)
    return fakes


def _run(tmp_path: Path, job: BuildJob, *, force: bool = False) -> PipelineResult:
    options = PipelineOptions(out_root=tmp_path / "out", cache_dir=tmp_path / "cache", force=force)
    engine = cast(Engine, SimpleNamespace(describe=lambda: "no engine: every stage is faked"))
    ledger = Ledger(tmp_path / "state")
    return Runner(job, engine, ledger, options, console.section, lambda line: None).run()


def _states(result: PipelineResult) -> dict[str, str]:
    return {stage.stage: stage.state for stage in result.stages}


ALL = ("build", "repair", "inspect", "smoke")


def test_a_second_run_of_the_same_key_skips_every_stage(
    tmp_path: Path, job: BuildJob, stages: Stages
) -> None:
    first = _run(tmp_path, job)
    assert first.ok and _states(first) == dict.fromkeys(ALL, "ran")
    assert stages.calls == list(ALL)
    again = _run(tmp_path, job)
    assert again.ok and _states(again) == dict.fromkeys(ALL, "skipped")
    assert stages.calls == list(ALL) and not again.did_work


def test_a_missing_repaired_wheel_runs_repair_and_what_follows_it_again(
    tmp_path: Path, job: BuildJob, stages: Stages
) -> None:
    first = _run(tmp_path, job)
    assert first.wheel is not None
    first.wheel.unlink()
    again = _run(tmp_path, job)
    assert _states(again) == {"build": "skipped", "repair": "ran", "inspect": "ran", "smoke": "ran"}


def test_a_changed_built_wheel_runs_everything_again(
    tmp_path: Path, job: BuildJob, stages: Stages
) -> None:
    _run(tmp_path, job)
    (built,) = (tmp_path / "out" / "built").glob("*.whl")
    built.write_bytes(built.read_bytes() + b"\0")  # not the bytes the ledger recorded
    assert _states(_run(tmp_path, job)) == dict.fromkeys(ALL, "ran")


def test_force_runs_every_stage(tmp_path: Path, job: BuildJob, stages: Stages) -> None:
    _run(tmp_path, job)
    assert _states(_run(tmp_path, job, force=True)) == dict.fromkeys(ALL, "ran")


def test_a_failed_stage_is_recorded_and_the_next_run_starts_there(
    tmp_path: Path, job: BuildJob, stages: Stages
) -> None:
    stages.fail_repair = True
    failed = _run(tmp_path, job)
    assert not failed.ok and isinstance(failed.error, RepairFailed)
    assert _states(failed) == {"build": "ran", "repair": "failed"}
    entry = Ledger(tmp_path / "state").get(job.build_key)
    assert entry is not None and not entry.passed("repair")
    repair = entry.stage("repair")
    assert repair is not None and repair.error == "auditwheel said no"
    stages.fail_repair = False
    again = _run(tmp_path, job)
    assert again.ok
    assert _states(again) == {"build": "skipped", "repair": "ran", "inspect": "ran", "smoke": "ran"}
