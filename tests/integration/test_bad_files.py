"""Files the installed farm reads that are wrong or damaged: named on one line, no traceback."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from farm.ledger import Ledger
from tests.conftest import demo_ledger_entry
from tests.integration.conftest import REPO, run_farm

pytestmark = pytest.mark.integration


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_target_named_other_than_its_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "targets").mkdir()
    shutil.copy(REPO / "recipes" / "targets" / "jetpack6.yaml", tmp_path / "targets" / "jp6.yaml")
    result = run_farm("--recipes", str(tmp_path), "targets")
    assert (result.returncode, result.stdout) == (2, "")
    line = _one_line(result)
    assert line.startswith("farm: error: ")
    assert "targets/jp6.yaml: name: 'jetpack6' differs from the file name 'jp6.yaml'" in line


def _ledger_with_a_damaged_file(state: Path) -> Path:
    ledger = Ledger(state)
    entry = demo_ledger_entry()
    entry.record("build", "passed", 1.0)
    ledger.save(entry)
    damaged = {**entry.to_json(), "build_key": "b" * 64}
    damaged["stages"]["publish"] = {"local": {"result": "passed", "duration_s": "5 s"}}
    ledger.path("b" * 64).write_text(json.dumps(damaged))
    return ledger.path("b" * 64)


@pytest.mark.parametrize("json_output", [False, True])
def test_farm_report_names_a_damaged_ledger_file(tmp_path: Path, json_output: bool) -> None:
    damaged = _ledger_with_a_damaged_file(tmp_path)
    argv = ("report", "--json") if json_output else ("report",)
    result = run_farm(*argv, env={"FARM_STATE_DIR": str(tmp_path)})
    assert result.returncode == 0
    line = _one_line(result)
    assert line.startswith(f"farm: warning: {damaged}: stages.publish.local.duration_s: ")
    assert line.endswith("its row is left out of the report")
    if json_output:
        document = json.loads(result.stdout)
        assert [row["build_key"] for row in document["rows"]] == ["k" * 64]
        (warning,) = document["warnings"]
        assert warning["file"] == str(damaged)
        assert (
            warning["problem"]
            == "stages.publish.local.duration_s: input should be a valid number, found str"
        )
    else:
        assert "bookworm-arm64" in result.stdout
