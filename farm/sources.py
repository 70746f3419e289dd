"""What a build's BuildKit context holds besides a repository-kept source tree.

An archive source (a Debian ``orig`` tarball, say) and the patches that apply to
it, and the pinned dependencies an onnxruntime build unpacks instead of letting
CMake download them, are fetched by farm into its download cache, checked
against their sha256, and put into the build context:

* ``source.tar``: the archive, as fetched (any compression ``tar`` reads)
* ``patches/series`` and ``patches/NNN-<name>``: patches in the order they apply
* ``deps/``: the unpacked dependencies and the recipe's small files (CMake shims)

The Dockerfile copies these in, so no step of the build reaches the network for
its source, and the build key covers every byte (``source_digest``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from farm.cudastack import (
    DEFAULT_MIRRORS,
    Mirrors,
    Progress,
    download_path,
    fetch,
    fetch_url,
    place_cached,
    unpack,
)
from farm.errors import CatalogError, StackError
from farm.models import ArchiveSource, PatchArchive, Recipe, StackPackage

SOURCE_ARCHIVE = "source.tar"
# What a repository-kept source tree leaves out, in its digest and its build context alike.
IGNORED_PARTS = frozenset({"__pycache__", "build", "dist", ".git", ".eggs"})
PATCH_DIR = "patches"
DEPS_DIR = "deps"


def archive_file_name(url: str) -> str:
    return PurePosixPath(urlsplit(url).path).name or "archive"


def source_digest(recipe: Recipe, recipe_path: Path, version: str) -> str | None:
    """Content hash of what an archive source builds from: its pin and its local patches."""
    source = recipe.source
    if not isinstance(source, ArchiveSource):
        return None
    digest = hashlib.sha256(source.sha256.get(version, "").encode())
    for name in source.patches:
        digest.update(name.encode() + b"\0" + _local_patch(recipe_path, name).read_bytes())
    return digest.hexdigest()


def tree_files(root: Path) -> list[Path]:
    """The files of a repository-kept source tree that a build sees, relative and sorted."""
    found = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if (
            path.is_file()
            and not IGNORED_PARTS & set(relative.parts)
            and not any(part.endswith(".egg-info") for part in relative.parts)
        ):
            found.append(relative)
    return found


def tree_digest(root: Path) -> str:
    """SHA-256 over the relative paths and contents of a repository-kept source tree."""
    digest = hashlib.sha256()
    for relative in tree_files(root):
        digest.update(relative.as_posix().encode() + b"\0" + (root / relative).read_bytes() + b"\0")
    return digest.hexdigest()


def stage_tree(root: Path, context: Path, epoch: int) -> None:
    """Copy a source tree's files into an (empty) build context with nothing of this
    machine in them: every mtime ``epoch``, modes 0644 or 0755 whatever the checkout's umask,
    and only the files :func:`tree_digest` covers."""
    for relative in tree_files(root):
        source, copy = root / relative, context / relative
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, copy)
        copy.chmod(0o755 if source.stat().st_mode & 0o111 else 0o644)
        os.utime(copy, (epoch, epoch))
    for directory in sorted(context.rglob("*"), reverse=True):
        if directory.is_dir():
            directory.chmod(0o755)
            os.utime(directory, (epoch, epoch))
    os.utime(context, (epoch, epoch))


def _local_patch(recipe_path: Path, name: str) -> Path:
    """A patch kept beside the recipe: a regular file inside the recipe's folder, never a
    link (whose target could change what is built without the recipe changing)."""
    folder = recipe_path.parent.resolve()
    path = folder / name
    if path.is_symlink() or any(parent.is_symlink() for parent in _parents_below(path, folder)):
        raise CatalogError(recipe_path, "source.patches", f"{name!r} is a symbolic link")
    if not path.resolve().is_relative_to(folder):
        raise CatalogError(recipe_path, "source.patches", f"{name!r} is outside the recipe folder")
    if not path.is_file():
        raise CatalogError(recipe_path, "source.patches", f"{name!r} is not a file")
    return path


def _parents_below(path: Path, folder: Path) -> list[Path]:
    return [parent for parent in path.parents if parent.is_relative_to(folder) and parent != folder]


def prepare_context(
    recipe: Recipe,
    recipe_path: Path,
    version: str,
    context: Path,
    cache: Path,
    say: Progress,
    mirrors: Mirrors = DEFAULT_MIRRORS,
) -> None:
    """Fill an (empty) build context with the archive, its patches and the dependencies."""
    source = recipe.source
    if isinstance(source, ArchiveSource):
        _add_archive(source, version, context, cache, say)
        _add_patches(source, recipe_path, context / PATCH_DIR, cache, say)
    deps: tuple[StackPackage, ...] = getattr(recipe.build, "deps", ())
    files: dict[str, str] = getattr(recipe.build, "dep_files", {})
    if deps or files:
        _add_deps(deps, files, context / DEPS_DIR, (cache, mirrors), say)


def _add_archive(
    source: ArchiveSource, version: str, context: Path, cache: Path, say: Progress
) -> None:
    sha256 = source.sha256.get(version)
    if sha256 is None:
        raise StackError(f"the source archive pins no sha256 for version {version}")
    url = source.ref_for(version)
    name = archive_file_name(url)
    fetched = fetch_url(url, sha256, download_path(cache, sha256, name), f"source {name}", say)
    place_cached(fetched, context / SOURCE_ARCHIVE)


def _add_patches(
    source: ArchiveSource, recipe_path: Path, directory: Path, cache: Path, say: Progress
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    series: list[str] = []
    for archive in source.patch_archives:
        for name, text in _patches_from(archive, cache, say):
            series.append(_write_patch(directory, len(series), name, text))
    for name in source.patches:
        text = _local_patch(recipe_path, name).read_bytes()
        series.append(_write_patch(directory, len(series), name, text))
    (directory / "series").write_text("".join(f"{name}\n" for name in series), encoding="utf-8")


def _write_patch(directory: Path, index: int, name: str, text: bytes) -> str:
    file_name = f"{index:03d}-{PurePosixPath(name).name}"
    (directory / file_name).write_bytes(text)
    return file_name


def _patches_from(archive: PatchArchive, cache: Path, say: Progress) -> list[tuple[str, bytes]]:
    name = archive_file_name(archive.url)
    path = fetch_url(
        archive.url, archive.sha256, download_path(cache, archive.sha256, name), name, say
    )
    wanted = set(archive.apply)
    found: dict[str, bytes] = {}
    with tarfile.open(path) as tar:
        for member in tar:
            member_name = member.name.removeprefix("./")
            if member_name in wanted and member.isfile():
                handle = tar.extractfile(member)
                found[member_name] = handle.read() if handle is not None else b""
    missing = [patch for patch in archive.apply if patch not in found]
    if missing:
        raise StackError(f"{name} holds no {missing[0]} (of the patches the recipe applies)")
    return [(patch, found[patch]) for patch in archive.apply]


def _add_deps(
    deps: tuple[StackPackage, ...],
    files: dict[str, str],
    directory: Path,
    downloads: tuple[Path, Mirrors],
    say: Progress,
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    cache, mirrors = downloads
    for package in deps:
        unpack(package, fetch(package, cache, say, mirrors), directory, "target")
    for relative, text in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
