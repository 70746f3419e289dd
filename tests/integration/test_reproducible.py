"""Two cold builds of the demo give the same wheel bytes, and the wheel says what made it.

The first build uses the repository's demo; the second a copy of the recipe and the source
tree in another directory, with other mtimes and group-writable modes (as another checkout
and umask would give). Each runs with `--no-cache` (every Dockerfile step again; BuildKit's
cache mounts, pip's download cache here, are kept) into its own state and output directory.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from farm.ledger import Ledger
from farm.provenance import provenance_matches, read_provenance
from farm.wheelzip import wheel_differences
from tests.integration.conftest import REPO, run_farm

pytestmark = pytest.mark.integration


def _elsewhere(root: Path) -> Path:
    """The demo recipe and source copied under ``root``, touched and made group-writable."""
    catalog = root / "recipes"
    (catalog / "packages").mkdir(parents=True)
    shutil.copy(REPO / "recipes" / "packages" / "demo.yaml", catalog / "packages" / "demo.yaml")
    shutil.copytree(REPO / "demo", root / "demo")  # where the recipe's ../../demo points
    for path in (root / "demo").rglob("*"):
        path.chmod(0o775 if path.is_dir() else 0o664)
        os.utime(path, (2_000_000_000, 2_000_000_000))
    return catalog


def _cold_build(root: Path, *recipes: str) -> dict[str, Any]:
    result = run_farm(
        *recipes,
        "build",
        "demo",
        "--target",
        "bookworm-arm64",
        "--no-cache",
        "--output-dir",
        str(root / "out"),
        "--json",
        env={"FARM_STATE_DIR": str(root / "state")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    document: dict[str, Any] = json.loads(result.stdout)
    return document


@pytest.fixture(scope="module")
def two_builds(
    host_ready: object, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], dict[str, Any], Path]:
    first_root = tmp_path_factory.mktemp("first")
    second_root = tmp_path_factory.mktemp("second")
    first = _cold_build(first_root)
    second = _cold_build(second_root, "--recipes", str(_elsewhere(second_root)))
    return first, second, first_root / "state"


def test_two_cold_builds_give_the_same_wheel_bytes(
    two_builds: tuple[dict[str, Any], dict[str, Any], Path],
) -> None:
    first, second, _ = two_builds
    assert first["build_key"] == second["build_key"]
    for kind in ("wheels", "repaired"):
        ours, theirs = Path(first[kind][0]), Path(second[kind][0])
        assert ours != theirs
        assert wheel_differences(ours, theirs) == [], kind


def test_the_repaired_wheel_carries_its_provenance(
    two_builds: tuple[dict[str, Any], dict[str, Any], Path],
) -> None:
    first, _, state = two_builds
    wheel = Path(first["repaired"][0])
    record = read_provenance(wheel)
    assert record is not None and record["build_key"] == first["build_key"]
    assert record["toolchain"]["compilers"]["cc"].startswith("cc (Debian 12")
    entry = Ledger(state).get(first["build_key"])
    assert entry is not None and provenance_matches(wheel, entry) == []
    shown = run_farm("inspect", str(wheel), "--target", "bookworm-arm64", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["provenance"] == record
