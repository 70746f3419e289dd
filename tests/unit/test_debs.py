# ruff: noqa: E501 - apt's and libprotobuf's own lines, quoted whole
"""Package locks: what apt says is parsed into pins, a lock is checked against the build that
uses it, and the rendered Dockerfiles install exactly its files, each checked again."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from farm.catalog import Catalog, load_catalog
from farm.debs import PackageLock, dump_lock, load_lock, parse_print_uris
from farm.errors import CatalogError
from farm.plan import plan_job
from farm.repair import render_repair
from farm.resources import BuilderResources

APT_SAYS = """\
'http://deb.debian.org/debian/pool/main/p/protobuf/libprotobuf32t64_3.21.12-11%2bdeb13u1_arm64.deb' libprotobuf32t64_3.21.12-11+deb13u1_arm64.deb 858432 SHA256:1111111111111111111111111111111111111111111111111111111111111111
'http://deb.debian.org/debian/pool/main/a/abseil/libabsl-dev_20240722.0-4_arm64.deb' libabsl-dev_20240722.0-4_arm64.deb 2000 SHA256:2222222222222222222222222222222222222222222222222222222222222222
'http://deb.debian.org/debian/pool/main/z/zz/libzz1_1%3a2.0-1_arm64.deb' libzz1_1%3a2.0-1_arm64.deb 10 SHA256:3333333333333333333333333333333333333333333333333333333333333333
Reading package lists...
"""


def test_apt_print_uris_becomes_pins_with_versions_and_pool_paths() -> None:
    debs = parse_print_uris(APT_SAYS.splitlines())
    assert [deb.name for deb in debs] == ["libabsl-dev", "libprotobuf32t64", "libzz1"]
    protobuf = debs[1]
    assert protobuf.version == "3.21.12-11+deb13u1"
    assert protobuf.file.startswith("pool/main/p/protobuf/")
    assert protobuf.sha256 == "1" * 64 and protobuf.size == 858432
    assert debs[2].version == "1:2.0-1"  # an epoch, which apt writes as %3a


def _lock(tmp_path: Path, requested: list[str], target: str = "standin-cuda12") -> Path:
    lock = PackageLock(
        schema_version=1,
        target=target,
        base_image="farm.local/standin-cuda12:0",
        requested=tuple(requested),
        packages=tuple(parse_print_uris(APT_SAYS.splitlines())),
    )
    path = tmp_path / "locks" / "x.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(dump_lock(lock), encoding="utf-8")
    return path


def test_a_lock_for_other_packages_than_the_build_installs_is_refused(tmp_path: Path) -> None:
    _lock(tmp_path, ["libprotobuf-dev"])
    with pytest.raises(
        CatalogError,
        match=r"x\.yaml: requested: locks libprotobuf-dev but the "
        r"build installs libonnx-dev, libprotobuf-dev",
    ) as caught:
        load_lock(tmp_path / "recipe.yaml", "locks/x.yaml", ["libprotobuf-dev", "libonnx-dev"])
    assert "farm lock" in (caught.value.hint or "")


def test_a_missing_lock_says_how_to_write_it(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="does not exist") as caught:
        load_lock(tmp_path / "recipe.yaml", "locks/none.yaml", ["a"])
    assert "farm lock" in (caught.value.hint or "")


def test_a_lock_outside_the_recipe_folder_or_a_link_is_refused(tmp_path: Path) -> None:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    real = _lock(tmp_path, ["libprotobuf-dev"])
    (recipes / "link.yaml").symlink_to(real)
    for name in ("../locks/x.yaml", "link.yaml"):
        with pytest.raises(CatalogError, match="outside the recipe"):
            load_lock(recipes / "recipe.yaml", name, ["libprotobuf-dev"])


def test_a_lock_with_a_bad_pin_names_the_file_and_field(tmp_path: Path) -> None:
    path = _lock(tmp_path, ["libprotobuf-dev"])
    data = yaml.safe_load(path.read_text())
    data["packages"][0]["sha256"] = "not a hash"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CatalogError, match=r"x\.yaml: packages\.0\.sha256"):
        load_lock(tmp_path / "recipe.yaml", "locks/x.yaml", ["libprotobuf-dev"])


def test_the_stand_in_onnxruntime_build_installs_only_the_locked_files(
    catalog: Catalog, ci_runner: BuilderResources
) -> None:
    job = plan_job(catalog, "onnxruntime-gpu", "standin-cuda12", resources=ci_runner)
    entry = catalog.recipe("onnxruntime-gpu")
    build = entry.model.for_target("standin-cuda12").build
    lock = load_lock(
        entry.path, "locks/onnxruntime-gpu.standin-cuda12.yaml", build.target_packages()
    )
    sysroot = job.dockerfile.split("AS sysroot", 1)[1].split("\nFROM ", 1)[0]
    assert "apt-get" not in sysroot  # nothing from the live archive
    assert "--mount=type=bind,source=debs" in sysroot
    for deb in lock.packages:  # every file checked by its pin, then installed by dpkg
        assert f"{deb.sha256}  {deb.file_name}" in sysroot
        assert re.search(rf"dpkg --install .*'?{re.escape(deb.file_name)}'?", sysroot)
    names = {deb.name for deb in lock.packages}
    assert {"libprotobuf-dev", "libonnx-dev"} <= names


def test_repair_grafts_from_the_same_locked_files(catalog: Catalog) -> None:
    entry = catalog.recipe("onnxruntime-gpu")
    build = entry.model.for_target("standin-cuda12").build
    lock = load_lock(entry.path, build.package_lock or "", build.target_packages())
    target = catalog.target("standin-cuda12").model
    text = render_repair("x.whl", target, "3.13", build.target_packages(), lock=lock)
    (wanted,) = [line for line in text.splitlines() if "missing=$(for p in" in line]
    assert "binutils" in wanted and "libprotobuf" not in wanted  # the lock's come from files
    for deb in lock.packages:
        assert f"{deb.sha256}  {deb.file_name}" in text
    assert "/farm/grafted.py" in text


def test_the_guard_links_the_versions_onnxruntime_links(catalog: Catalog) -> None:
    """demo-graft must graft the very libprotobuf and libonnx onnxruntime's wheel grafts."""

    def versions(recipe: str) -> dict[str, str]:
        entry = catalog.recipe(recipe)
        build = entry.model.for_target("standin-cuda12").build
        lock = load_lock(entry.path, build.package_lock or "", build.target_packages())
        return {deb.name: deb.sha256 for deb in lock.packages}

    guard, onnxruntime = versions("demo-graft"), versions("onnxruntime-gpu")
    shared = [name for name in guard if re.match(r"lib(protobuf|onnx)[0-9a-z]*$", name)]
    assert any(name.startswith("libprotobuf") for name in shared)
    assert any(name.startswith("libonnx") for name in shared)
    for name in shared:
        assert guard[name] == onnxruntime[name], name


def test_a_lock_for_another_target_is_refused_when_rendering(
    catalog_copy: Path, ci_runner: BuilderResources
) -> None:
    recipe = catalog_copy / "packages" / "demo-graft.yaml"
    lock = catalog_copy / "packages" / "locks" / "demo-graft.standin-cuda12.yaml"
    data = yaml.safe_load(lock.read_text())
    data["target"] = "standin-cuda13"
    lock.write_text(yaml.safe_dump(data))
    catalog = load_catalog([catalog_copy])
    with pytest.raises(
        CatalogError, match="pins packages for target standin-cuda13, not standin-cuda12"
    ) as caught:
        plan_job(catalog, "demo-graft", "standin-cuda12", resources=ci_runner)
    assert str(recipe.name) in str(caught.value)
