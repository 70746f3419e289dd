"""Archive sources, their patches and pinned dependencies in the build context."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from farm.errors import CatalogError, EnvironmentProblem, StackError
from farm.models import ArchiveSource, Recipe
from farm.sources import SOURCE_ARCHIVE, prepare_context, source_digest


def _tar(path: Path, files: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:xz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _recipe(tmp_path: Path, source: dict[str, object]) -> tuple[Recipe, Path]:
    (tmp_path / "patches").mkdir(exist_ok=True)
    (tmp_path / "patches" / "local.patch").write_text("--- a/x\n+++ b/x\n")
    recipe = Recipe.model_validate(
        {
            "name": "pkg",
            "description": "a package",
            "source": {"kind": "git", "url": "https://example.invalid/pkg.git"},
            "versions": ["1.0", "2.0"],
            "defaults": {"t": "2.0"},
            "build": {"kind": "onnxruntime", "cmake": ">=3.28", "cmake_defines": {"A": "1"}},
            "smoke": {"kind": "python", "module": "pkg", "script": "import pkg"},
            "overrides": {
                "t": {
                    "source": source,
                    "build": {"cmake_defines": {"B": "2"}, "sysroot_packages": ["libx-dev"]},
                }
            },
        }
    )
    return recipe.for_target("t"), tmp_path / "pkg.yaml"


def test_a_target_override_narrows_versions_and_merges_the_build(tmp_path: Path) -> None:
    source = {
        "kind": "archive",
        "url": "file:///nowhere/pkg-{version}.tar.xz",
        "sha256": {"1.0": "a" * 64},
    }
    recipe, _ = _recipe(tmp_path, source)
    assert isinstance(recipe.source, ArchiveSource)
    assert recipe.versions == ("1.0",)
    assert recipe.defaults == {}  # 2.0 is not in the archive's pins
    assert recipe.build.cmake_defines == {"A": "1", "B": "2"}  # type: ignore[union-attr]
    assert recipe.build.sysroot_packages == ("libx-dev",)  # type: ignore[union-attr]
    assert recipe.source.ref_for("1.0") == "file:///nowhere/pkg-1.0.tar.xz"


def test_an_archive_version_the_recipe_does_not_list_is_refused(tmp_path: Path) -> None:
    source = {"kind": "archive", "url": "file:///x/{version}.tar", "sha256": {"9.9": "a" * 64}}
    with pytest.raises(ValueError, match=r"9.9 is pinned but not in versions"):
        _recipe(tmp_path, source)


def test_the_context_holds_the_archive_and_the_patches_in_order(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    source_sha = _tar(mirror / "pkg-1.0.tar.xz", {"pkg-1.0/setup.py": b"print(1)\n"})
    patch_sha = _tar(
        mirror / "debian.tar.xz",
        {"debian/patches/one.patch": b"one\n", "debian/patches/two.patch": b"two\n"},
    )
    source = {
        "kind": "archive",
        "url": f"file://{mirror}/pkg-{{version}}.tar.xz",
        "sha256": {"1.0": source_sha},
        "patch_archives": [
            {
                "url": f"file://{mirror}/debian.tar.xz",
                "sha256": patch_sha,
                "apply": ["debian/patches/two.patch", "debian/patches/one.patch"],
            }
        ],
        "patches": ["patches/local.patch"],
    }
    recipe, recipe_path = _recipe(tmp_path, source)
    context, cache = tmp_path / "context", tmp_path / "cache"
    context.mkdir()
    prepare_context(recipe, recipe_path, "1.0", context, cache, lambda line: None)
    assert (context / SOURCE_ARCHIVE).read_bytes() == (mirror / "pkg-1.0.tar.xz").read_bytes()
    series = (context / "patches" / "series").read_text().split()
    assert series == ["000-two.patch", "001-one.patch", "002-local.patch"]
    assert (context / "patches" / "000-two.patch").read_bytes() == b"two\n"
    # The local patch's bytes are part of what the build key covers.
    before = source_digest(recipe, recipe_path, "1.0")
    (tmp_path / "patches" / "local.patch").write_text("--- a/x\n+++ b/y\n")
    assert source_digest(recipe, recipe_path, "1.0") != before


def test_a_source_archive_with_other_bytes_is_refused(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    _tar(mirror / "pkg-1.0.tar.xz", {"pkg-1.0/setup.py": b""})
    source = {
        "kind": "archive",
        "url": f"file://{mirror}/pkg-{{version}}.tar.xz",
        "sha256": {"1.0": "b" * 64},
    }
    recipe, recipe_path = _recipe(tmp_path, source)
    (tmp_path / "context").mkdir()
    with pytest.raises(StackError, match=f"but {'b' * 64} is pinned"):
        prepare_context(recipe, recipe_path, "1.0", tmp_path / "context", tmp_path / "c", print)
    assert not list((tmp_path / "c").rglob("pkg-1.0.tar.xz"))


def test_a_missing_archive_is_a_host_problem(tmp_path: Path) -> None:
    source = {
        "kind": "archive",
        "url": f"file://{tmp_path}/none-{{version}}.tar",
        "sha256": {"1.0": "c" * 64},
    }
    recipe, recipe_path = _recipe(tmp_path, source)
    (tmp_path / "context").mkdir()
    with pytest.raises(EnvironmentProblem, match="no such file"):
        prepare_context(recipe, recipe_path, "1.0", tmp_path / "context", tmp_path / "c", print)


@pytest.mark.parametrize("how", ["link", "outside", "linked folder"])
def test_a_patch_that_is_a_link_or_outside_the_recipe_is_refused(tmp_path: Path, how: str) -> None:
    """A patch must be the recipe's own file: a link could change what is built without the
    recipe (and its digest) changing."""
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "evil.patch").write_text("--- a/x\n+++ b/x\n")
    if how == "link":
        (recipes / "patches").mkdir()
        (recipes / "patches" / "local.patch").symlink_to(elsewhere / "evil.patch")
        name = "patches/local.patch"
    elif how == "linked folder":
        (recipes / "patches").symlink_to(elsewhere)
        name = "patches/evil.patch"
    else:
        name = "../elsewhere/evil.patch"
    source = {"kind": "archive", "url": "file:///x/{version}.tar", "sha256": {"1.0": "a" * 64},
              "patches": [name]}  # fmt: skip
    (tmp_path / "r").mkdir()
    if how == "outside":  # the recipe's schema already refuses ".."
        with pytest.raises(ValueError, match=r"without '\.\.'"):
            _recipe(tmp_path / "r", source)
        return
    recipe, _ = _recipe(tmp_path / "r", source)
    with pytest.raises(CatalogError, match=r"source\.patches: .*(symbolic link|outside)"):
        source_digest(recipe, recipes / "pkg.yaml", "1.0")
