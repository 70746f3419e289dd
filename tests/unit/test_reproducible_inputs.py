"""What a build sees is the same on every machine: SOURCE_DATE_EPOCH, the staged source tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from farm.build import read_toolchain
from farm.catalog import Catalog, load_catalog
from farm.errors import CatalogError
from farm.jobspec import DEFAULT_SOURCE_DATE_EPOCH
from farm.plan import plan_job
from farm.repair import render_repair
from farm.resources import BuilderResources
from farm.sources import stage_tree, tree_digest


def _with_epoch(catalog_copy: Path, epochs: dict[str, int]) -> Catalog:
    path = catalog_copy / "packages" / "demo.yaml"
    recipe = yaml.safe_load(path.read_text())
    recipe["source_date_epoch"] = epochs
    path.write_text(yaml.safe_dump(recipe))
    return load_catalog([catalog_copy])


@pytest.mark.parametrize(
    ("package", "target", "strategy"),
    [
        ("demo", "bookworm-arm64", "emulated"),
        ("demo", "bookworm-arm64", "cross"),
        ("onnxruntime-gpu", "jetpack6", None),
        ("onnxruntime-gpu", "standin-cuda12", None),
    ],
)
def test_every_build_sets_source_date_epoch_and_records_its_compilers(
    catalog: Catalog, ci_runner: BuilderResources, package: str, target: str, strategy: str | None
) -> None:
    job = plan_job(catalog, package, target, resources=ci_runner, strategy=strategy)  # type: ignore[arg-type]
    assert f"ENV SOURCE_DATE_EPOCH={DEFAULT_SOURCE_DATE_EPOCH}\n" in job.dockerfile
    assert "> /farm/wheels/build-info/toolchain.txt" in job.dockerfile
    nvcc = "/bin/nvcc --version 2>&1 | grep -m 1 release" in job.dockerfile
    assert nvcc == (job.spec.target.cuda is not None)


def test_the_recipe_names_the_epoch_per_version_and_the_key_follows_it(
    catalog_copy: Path, ci_runner: BuilderResources
) -> None:
    default = plan_job(load_catalog([catalog_copy]), "demo", "bookworm-arm64", resources=ci_runner)
    dated = plan_job(
        _with_epoch(catalog_copy, {"0.1.0": 1_700_000_000}),
        "demo",
        "bookworm-arm64",
        resources=ci_runner,
    )
    assert dated.spec.source_date_epoch == 1_700_000_000
    assert "ENV SOURCE_DATE_EPOCH=1700000000\n" in dated.dockerfile
    assert dated.build_key != default.build_key
    with pytest.raises(CatalogError, match=r"source_date_epoch\.9\.9: not in versions"):
        _with_epoch(catalog_copy, {"9.9": 1})


def test_the_repair_stamps_with_the_same_epoch(catalog: Catalog) -> None:
    target = catalog.target("bookworm-arm64").model
    text = render_repair("w-1.0-cp311-cp311-linux_aarch64.whl", target, "3.11", (), 1_700_000_000)
    assert "ENV SOURCE_DATE_EPOCH=1700000000\n" in text


def test_a_staged_source_tree_carries_no_mtime_or_umask_of_this_machine(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "pkg" / "__pycache__").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_text("x = 1\n")
    (root / "pkg" / "__pycache__" / "mod.pyc").write_bytes(b"stale")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o775)
    (root / "pkg" / "mod.py").chmod(0o664)
    os.utime(root / "pkg" / "mod.py", (1_800_000_000, 1_800_000_000))
    context = tmp_path / "context"
    context.mkdir()
    stage_tree(root, context, 1_000_000_000)
    staged = sorted(p.relative_to(context).as_posix() for p in context.rglob("*"))
    assert staged == ["pkg", "pkg/mod.py", "run.sh"]
    for path in [context, *context.rglob("*")]:
        assert path.stat().st_mtime == 1_000_000_000
    assert (context / "pkg" / "mod.py").stat().st_mode & 0o777 == 0o644
    assert (context / "run.sh").stat().st_mode & 0o777 == 0o755
    assert tree_digest(context) == tree_digest(root)


def test_the_toolchain_record_is_read_line_by_line(tmp_path: Path) -> None:
    (tmp_path / "build-info").mkdir()
    (tmp_path / "build-info" / "toolchain.txt").write_text(
        "cc: cc (Debian 12.2.0-14) 12.2.0\nc++: \nnvcc: Cuda compilation tools, release 12.4\n"
    )
    assert read_toolchain(tmp_path) == {
        "cc": "cc (Debian 12.2.0-14) 12.2.0",
        "nvcc": "Cuda compilation tools, release 12.4",
    }
    assert read_toolchain(tmp_path / "nothing") == {}
