"""The ledger: per-key stage results, staleness, atomic files and the state lock."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from farm.errors import CorruptRecord, StateLocked
from farm.ledger import Ledger
from tests.conftest import demo_ledger_entry

_ENTRY = demo_ledger_entry().to_json()
_PASSED = {"result": "passed", "duration_s": 1.0}


def test_results_survive_a_round_trip(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    entry = demo_ledger_entry()
    entry.record("build", "passed", 12.345, wheel="/out/w.whl", sha256="a" * 64)
    entry.record("publish", "passed", 1.0, "local", wheel="w.whl", sha256="b" * 64)
    ledger.save(entry)
    again = ledger.get(entry.build_key)
    assert again is not None
    assert again.passed("build") and again.passed("publish", "local")
    assert not again.passed("publish", "gitlab") and not again.passed("smoke")
    build = again.stage("build")
    assert build is not None and build.to_json() == {
        "result": "passed",
        "duration_s": 12.35,
        "finished_at": build.finished_at,
        "wheel": "/out/w.whl",
        "sha256": "a" * 64,
    }
    scan = ledger.scan()
    assert [e.build_key for e in scan.entries] == [entry.build_key]
    assert scan.damaged == []
    assert not list(tmp_path.glob("ledger/.*"))  # no temporary files left


def test_running_a_stage_again_drops_what_was_built_on_it() -> None:
    entry = demo_ledger_entry()
    for stage in ("build", "repair", "inspect", "smoke"):
        entry.record(stage, "passed", 1.0)
    entry.record("publish", "passed", 1.0, "local")
    entry.record("publish", "passed", 1.0, "gitlab")
    entry.record("install", "passed", 1.0, "local")
    entry.record("install", "passed", 1.0, "gitlab")
    entry.record("publish", "passed", 2.0, "local")
    assert not entry.passed("install", "local") and entry.passed("install", "gitlab")
    entry.record("publish", "passed", 0.1, "gitlab", invalidate=False)
    assert entry.passed("install", "gitlab")  # found unchanged: what followed still holds
    entry.record("repair", "passed", 2.0)
    assert entry.passed("build") and entry.passed("repair")
    assert not entry.passed("smoke") and not entry.passed("publish", "gitlab")


def test_per_registry_stages_need_a_registry() -> None:
    with pytest.raises(ValueError, match="per registry"):
        demo_ledger_entry().record("publish", "passed", 1.0)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "not JSON (Expecting property name"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({"schema_version": 99}), "schema_version 99, but this farm reads 1"),
        ("{}", "schema_version None, but this farm reads 1"),
        (json.dumps({**_ENTRY, "package": None}), "package: missing or not a string"),
        (json.dumps({**_ENTRY, "stages": []}), "stages: not an object"),
        (json.dumps({**_ENTRY, "stages": {"build": "passed"}}), "stages.build: not an object"),
        (
            json.dumps({**_ENTRY, "stages": {"smoke": {"result": "passed"}}}),
            "stages.smoke.duration_s: missing",
        ),
        (
            json.dumps({**_ENTRY, "stages": {"publish": {"local": {**_PASSED, "wheel": 7}}}}),
            "stages.publish.local.wheel: input should be a valid string, found int",
        ),
    ],
)
def test_a_damaged_file_is_named_with_its_problem(tmp_path: Path, text: str, problem: str) -> None:
    ledger = Ledger(tmp_path)
    good = demo_ledger_entry()
    ledger.save(good)
    damaged = ledger.path("d" * 64)
    damaged.write_text(text)
    scan = ledger.scan()
    assert [entry.build_key for entry in scan.entries] == [good.build_key]
    (found,) = scan.damaged
    assert found.path == str(damaged)
    assert found.problem.startswith(problem)
    assert found.message == f"{damaged}: {found.problem}"
    with pytest.raises(CorruptRecord) as caught:
        ledger.get("d" * 64)
    assert caught.value.problem == found.problem
    assert ledger.get("e" * 64) is None  # no file: no entry, and nothing wrong


def _hold_lock(
    state: str, ready: multiprocessing.synchronize.Event, done: multiprocessing.synchronize.Event
) -> None:
    with Ledger(Path(state)).locked("farm nightly"):
        ready.set()
        done.wait(30)


def test_a_second_run_on_the_same_state_directory_is_refused(tmp_path: Path) -> None:
    ready, done = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold_lock, args=(str(tmp_path), ready, done))
    holder.start()
    try:
        assert ready.wait(30)
        locked = pytest.raises(StateLocked, match=rf"in use by pid {holder.pid} \(farm nightly")
        with locked, Ledger(tmp_path).locked("farm build"):
            pass
    finally:
        done.set()
        holder.join(30)
    with Ledger(tmp_path).locked("farm build"):  # free again once the first run ended
        assert "farm build" in (tmp_path / "farm.lock").read_text()


def test_a_stage_records_only_the_fields_its_model_names() -> None:
    from pydantic import ValidationError

    entry = demo_ledger_entry()
    with pytest.raises(ValidationError, match="wheell"):
        entry.record("build", "passed", 1.0, wheell="/out/w.whl")
    entry.record("smoke", "passed", 2, sha256="c" * 64, check="d" * 64)
    smoke = entry.stage("smoke")
    assert smoke is not None and (smoke.duration_s, smoke.check) == (2.0, "d" * 64)
    assert entry.stage("publish", "local") is None and entry.wheel("build") is None
