"""Shared fixtures: the built-in catalog, and a scratch copy for tests that break files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from farm.catalog import Catalog, load_catalog
from farm.ledger import LedgerEntry
from farm.paths import data_dir
from farm.resources import BuilderResources

REPO = Path(__file__).resolve().parent.parent
# The targets the built-in catalog ships: JetPacks, the CPU Debian target, the CUDA stand-ins.
BUILTIN_TARGETS = {
    "jetpack5",
    "jetpack6",
    "jetpack7",
    "bookworm-arm64",
    "standin-cuda12",
    "standin-cuda13",
}


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog([data_dir("recipes")])


@pytest.fixture
def catalog_copy(tmp_path: Path) -> Path:
    """A writable copy of the built-in catalog, used as the only catalog directory."""
    copy = tmp_path / "recipes"
    shutil.copytree(data_dir("recipes"), copy)
    for tree in ("demo", "demo-cmake", "demo-cuda", "demo-graft"):  # the demo recipes' sources
        shutil.copytree(REPO / tree, tmp_path / tree)
    return copy


@pytest.fixture
def ci_runner() -> BuilderResources:
    """The figures of this project's CI machines: 2 cores, 24 GiB."""
    return BuilderResources(cpus=2, memory_gib=24.0, source="test")


def demo_ledger_entry() -> LedgerEntry:
    """The ledger entry of a demo build for bookworm-arm64, with no stage recorded yet."""
    return LedgerEntry(
        build_key="k" * 64,
        package="demo",
        distribution="farm-demo",
        version="0.1.0",
        target="bookworm-arm64",
        python="3.11",
        job_dir="/out/demo",
    )
