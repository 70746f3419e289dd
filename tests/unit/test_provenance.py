"""The provenance record in each repaired wheel, and its check against the ledger."""

from __future__ import annotations

import getpass
import json
import socket
import zipfile
from pathlib import Path
from typing import Any

import pytest

from farm.catalog import Catalog, load_catalog
from farm.cli import main
from farm.ledger import LedgerEntry
from farm.plan import BuildJob, plan_job
from farm.provenance import (
    PROVENANCE_FILE,
    provenance_bytes,
    provenance_matches,
    provenance_record,
    read_provenance,
    stamp_wheel,
)
from farm.resources import BuilderResources
from farm.wheelfile import with_build_number
from farm.wheelzip import content_digest, rewrite_wheel
from tests.conftest import demo_ledger_entry
from tests.registries.wheels import make_wheel, sha256

TOOLCHAIN = {"cc": "cc (Debian 12.2.0-14) 12.2.0"}
TAG = "cp311-cp311-manylinux_2_36_aarch64"


@pytest.fixture
def job(catalog: Catalog, ci_runner: BuilderResources) -> BuildJob:
    return plan_job(catalog, "demo", "bookworm-arm64", resources=ci_runner)


def test_the_record_names_what_made_the_wheel(job: BuildJob) -> None:
    record = provenance_record(job, TOOLCHAIN)
    assert record["schema_version"] == 1
    assert record["build_key"] == job.build_key
    assert (record["distribution"], record["version"], record["python"]) == (
        "farm-demo",
        "0.1.0",
        "3.11",
    )
    assert record["target"]["name"] == "bookworm-arm64"
    assert record["source"]["kind"] == "path"
    assert record["source"]["digest"] == job.spec.source_digest
    assert record["images"]["base"] == job.spec.target.base_image.pinned
    assert record["toolchain"]["compilers"] == TOOLCHAIN
    assert record["strategy"] == "emulated"
    assert record["source_date_epoch"] == job.spec.source_date_epoch


def test_the_record_holds_nothing_of_the_machine(
    job: BuildJob, catalog_copy: Path, ci_runner: BuilderResources
) -> None:
    """The same recipes from another directory give the same record, byte for byte."""
    elsewhere = plan_job(
        load_catalog([catalog_copy]), "demo", "bookworm-arm64", resources=ci_runner
    )
    here = provenance_bytes(provenance_record(job, TOOLCHAIN))
    assert provenance_bytes(provenance_record(elsewhere, TOOLCHAIN)) == here
    text = here.decode()
    for local in (str(Path.cwd()), str(Path.home()), str(catalog_copy), socket.gethostname()):
        assert local not in text
    assert f'"{getpass.getuser()}"' not in text
    assert "_at" not in text and "time" not in text.replace("source_date_epoch", "")


def _stamped(directory: Path, job: BuildJob, payload: bytes = b"x") -> tuple[Path, dict[str, Any]]:
    wheel = make_wheel(directory, "farm-demo", "0.1.0", payload=payload, tag=TAG)
    record = provenance_record(job, TOOLCHAIN)
    return stamp_wheel(wheel, record, job.spec.source_date_epoch), record


def test_a_stamped_wheel_carries_the_record_in_its_sboms_directory(
    job: BuildJob, tmp_path: Path
) -> None:
    wheel, record = _stamped(tmp_path / "a", job)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        member = f"farm_demo-0.1.0.dist-info/sboms/{PROVENANCE_FILE}"
        assert member in names
        assert names[-1] == "farm_demo-0.1.0.dist-info/RECORD"
        assert f"{member},sha256=" in archive.read(names[-1]).decode()
    assert read_provenance(wheel) == record
    # The same wheel written at another time, in another order: the same stamped bytes.
    other = tmp_path / "b" / wheel.name
    rewrite_wheel(
        make_wheel(tmp_path / "raw", "farm-demo", "0.1.0", payload=b"x", tag=TAG),
        other,
        stamp=(2031, 5, 4, 3, 2, 0),
    )
    assert sha256(stamp_wheel(other, record, job.spec.source_date_epoch)) == sha256(wheel)


def _entry(job: BuildJob, wheel: Path, record: dict[str, Any]) -> LedgerEntry:
    entry = demo_ledger_entry()
    entry.build_key = job.build_key
    entry.record("build", "passed", 1.0, wheel=str(wheel), sha256="b")
    entry.record(
        "repair",
        "passed",
        1.0,
        wheel=str(wheel),
        sha256=sha256(wheel),
        provenance=record,
        content_digest=content_digest(wheel),
    )
    return entry


def test_the_repaired_wheel_and_its_renumbered_copies_match_their_entry(
    job: BuildJob, tmp_path: Path
) -> None:
    wheel, record = _stamped(tmp_path, job)
    entry = _entry(job, wheel, json.loads(provenance_bytes(record)))
    assert provenance_matches(wheel, entry) == []
    assert provenance_matches(with_build_number(wheel, 2, tmp_path / "renumbered"), entry) == []


def test_a_wheel_that_is_not_the_entrys_is_refused_with_reasons(
    job: BuildJob, tmp_path: Path
) -> None:
    wheel, record = _stamped(tmp_path / "ours", job)
    entry = _entry(job, wheel, record)
    other_files, _ = _stamped(tmp_path / "other", job, payload=b"y")
    assert provenance_matches(other_files, entry) == [
        f"the files in {other_files.name} are not those of the repaired wheel"
    ]
    forged = stamp_wheel(
        make_wheel(tmp_path / "forged", "farm-demo", "0.1.0", payload=b"x", tag=TAG),
        {**record, "build_key": "f" * 64},
        job.spec.source_date_epoch,
    )
    problems = provenance_matches(forged, entry)
    assert f"provenance build_key is {'f' * 64!r}, the ledger entry's is {job.build_key!r}" in (
        problems
    )
    assert "provenance differs from the ledger's in: build_key" in problems
    bare = make_wheel(tmp_path / "bare", "farm-demo", "0.1.0", payload=b"x", tag=TAG)
    assert provenance_matches(bare, entry) == [f"{bare.name} carries no {PROVENANCE_FILE}"]
    older = _entry(job, wheel, record)
    older.stages["repair"] = older.stages["repair"].model_copy(update={"provenance": None})
    assert provenance_matches(wheel, older) == [
        "the ledger entry records no provenance (repaired by an older farm)"
    ]


def test_farm_inspect_prints_the_provenance(
    job: BuildJob, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel, record = _stamped(tmp_path, job)
    assert main(["inspect", str(wheel), "--target", "bookworm-arm64"]) == 0
    out = capsys.readouterr().out
    assert f"  provenance: build key {job.build_key} (farm " in out
    assert "  provenance: toolchain cc: cc (Debian 12.2.0-14) 12.2.0\n" in out
    assert main(["inspect", str(wheel), "--target", "bookworm-arm64", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["provenance"] == record
