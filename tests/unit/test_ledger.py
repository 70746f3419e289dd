"""The ledger: per-key stage results, staleness, atomic files and the state lock."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from farm.ledger import Ledger, LedgerEntry, StateLocked


def _entry() -> LedgerEntry:
    return LedgerEntry(
        build_key="k" * 64,
        package="demo",
        distribution="farm-demo",
        version="0.1.0",
        target="bookworm-arm64",
        python="3.11",
        job_dir="/out/demo",
    )


def test_results_survive_a_round_trip(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    entry = _entry()
    entry.record("build", "passed", 12.345, wheel="/out/w.whl", sha256="a" * 64)
    entry.record("publish", "passed", 1.0, "local", wheel="w.whl", sha256="b" * 64)
    ledger.save(entry)
    again = ledger.get(entry.build_key)
    assert again is not None
    assert again.passed("build") and again.passed("publish", "local")
    assert not again.passed("publish", "gitlab") and not again.passed("smoke")
    assert again.stage("build") == {
        "result": "passed",
        "duration_s": 12.35,
        "finished_at": again.stages["build"]["finished_at"],
        "wheel": "/out/w.whl",
        "sha256": "a" * 64,
    }
    assert [e.build_key for e in ledger.entries()] == [entry.build_key]
    assert not list(tmp_path.glob("ledger/.*"))  # no temporary files left


def test_running_a_stage_again_drops_what_was_built_on_it() -> None:
    entry = _entry()
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
        _entry().record("publish", "passed", 1.0)


def test_foreign_or_old_files_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "ledger").mkdir()
    (tmp_path / "ledger" / "x.json").write_text(json.dumps({"schema_version": 99}))
    (tmp_path / "ledger" / "y.json").write_text("{not json")
    assert Ledger(tmp_path).entries() == []


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
