"""farm report's document and page, from a ledger written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from farm.cli import main
from farm.ledger import Ledger, LedgerEntry
from farm.report import render_html, report_document


def _ledger(tmp_path: Path) -> Ledger:
    ledger = Ledger(tmp_path)
    done = LedgerEntry(
        build_key="a" * 64,
        package="onnxruntime-gpu",
        distribution="onnxruntime-gpu",
        version="1.23.2",
        target="jetpack6",
        python="3.10",
        job_dir="/out/x",
    )
    for stage in ("build", "repair", "inspect", "smoke"):
        done.record(stage, "passed", 60.0, wheel="/out/x/ort<b>.whl", size=123_456_789)
    done.record("publish", "passed", 5.0, "gitlab")
    ledger.save(done)
    broken = LedgerEntry(
        build_key="b" * 64,
        package="onnxruntime-gpu",
        distribution="onnxruntime-gpu",
        version="1.16.3",
        target="jetpack5",
        python="3.8",
        job_dir="/out/y",
    )
    broken.record("build", "failed", 3.0, error="build step failed")
    ledger.save(broken)
    return ledger


def test_the_document_is_a_matrix_of_keys_and_stages(tmp_path: Path) -> None:
    document = report_document(_ledger(tmp_path))
    assert document["schema_version"] == 1
    assert document["stages"] == ["build", "repair", "inspect", "smoke", "publish", "install"]
    first, second = document["rows"]
    assert (first["target"], second["target"]) == ("jetpack5", "jetpack6")
    assert first["stages"]["build"]["result"] == "failed" and first["stages"]["repair"] is None
    assert second["stages"]["publish"] == {
        "result": "passed",
        "duration_s": 5.0,
        "registries": ["gitlab"],
    }
    assert second["size_human"] == "123.5 MB"


def test_the_page_escapes_what_it_shows(tmp_path: Path) -> None:
    page = render_html(report_document(_ledger(tmp_path)))
    assert "ort&lt;b&gt;.whl" in page and "ort<b>" not in page
    assert page.count('class="failed"') == 1 and 'class="missing"' in page


def test_a_damaged_ledger_file_is_named_not_dropped_silently(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    damaged = ledger.path("c" * 64)
    damaged.write_text('{"schema_version": 1, "build_key": "cccc", "stag')
    document = report_document(ledger)
    assert len(document["rows"]) == 2
    (warning,) = document["warnings"]
    assert warning["file"] == str(damaged) and warning["problem"].startswith("not JSON")
    assert warning["message"].startswith(f"{damaged}: not JSON")
    assert warning["message"].endswith("its row is left out of the report")
    assert "its row is left out of the report" in render_html(document)


def test_farm_report_warns_once_per_damaged_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = _ledger(tmp_path)
    ledger.path("c" * 64).write_text("")
    ledger.path("d" * 64).write_text('{"schema_version": 0}')
    monkeypatch.setenv("FARM_STATE_DIR", str(tmp_path))
    assert main(["report", "--json"]) == 0
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert len(document["rows"]) == 2
    assert [Path(w["file"]).name for w in document["warnings"]] == [
        "c" * 64 + ".json",
        "d" * 64 + ".json",
    ]
    assert err.splitlines() == [f"farm: warning: {w['message']}" for w in document["warnings"]]


def test_each_row_links_the_provenance_its_wheel_was_stamped_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = _ledger(tmp_path)
    entry = ledger.get("a" * 64)
    assert entry is not None
    provenance = {"build_key": "a" * 64, "source": {"kind": "git"}, "source_date_epoch": 1}
    entry.record("repair", "passed", 1.0, wheel="/out/x/w.whl", provenance=provenance)
    ledger.save(entry)
    monkeypatch.setenv("FARM_STATE_DIR", str(tmp_path))
    assert main(["report", "--html", str(tmp_path / "public")]) == 0
    page = (tmp_path / "public" / "index.html").read_text()
    assert f'<a href="provenance/{"a" * 64}.json">provenance</a>' in page
    written = json.loads((tmp_path / "public" / "provenance" / f"{'a' * 64}.json").read_text())
    assert written == provenance
    rows = json.loads((tmp_path / "public" / "report.json").read_text())["rows"]
    assert [row["provenance_file"] for row in rows] == [None, f"provenance/{'a' * 64}.json"]
