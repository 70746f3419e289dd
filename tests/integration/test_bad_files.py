"""Files the installed farm reads that are wrong or damaged: named on one line, no traceback."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

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
