"""Target packages pinned by version and sha256: a build's package lock.

A build that installs target packages (a cross build's sysroot, the libraries
repair grafts) takes them from the live archive unless its recipe names a
**package lock**: a file beside the recipe listing every Debian package the
install needs beyond the base image, each by pool path, version and sha256.
farm fetches them into its download cache (checked against the pin on every
use), the build context carries them, and the Dockerfile checks each file's
sha256 again and installs them with ``dpkg`` alone: nothing comes from the
archive while the image is built, so a rebuild uses the same bytes.

``farm lock RECIPE --target T`` writes the file: it asks apt, in the target's
own base image, which files it would download for the packages (``apt-get
install --print-uris``, whose hashes come from the signed index).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

import yaml
from pydantic import Field, ValidationError

from farm.cudastack import Mirrors, Progress, download_path, fetch_url, place_cached
from farm.errors import CatalogError
from farm.models import FrozenModel, RelativePath, Sha256

# Debian policy 5.6.1 and 5.6.12: package names and versions.
_PACKAGE = r"^[a-z0-9][a-z0-9+.-]+$"
_VERSION = r"^[0-9A-Za-z.+~:-]+$"
LOCK_SCHEMA = 1
DEBS_DIR = "debs"
# apt-get --print-uris: 'URL' FILE SIZE SHA256:HEX
_PRINT_URI = re.compile(
    r"^'(?P<url>[^']+)' (?P<file>\S+) (?P<size>\d+) SHA256:(?P<sha>[0-9a-f]{64})$"
)


class LockedDeb(FrozenModel):
    """One Debian package file, pinned."""

    name: str = Field(pattern=_PACKAGE, max_length=128)
    version: str = Field(pattern=_VERSION, max_length=128)
    architecture: str = Field(pattern=r"^[a-z0-9-]+$", max_length=32)
    file: RelativePath  # the pool path below the mirror
    sha256: Sha256
    size: int = Field(gt=0)

    @property
    def file_name(self) -> str:
        return PurePosixPath(self.file).name


class PackageLock(FrozenModel):
    """What installing ``requested`` into ``base_image`` fetches, file by file."""

    schema_version: int = Field(ge=LOCK_SCHEMA, le=LOCK_SCHEMA)
    target: str
    base_image: str
    requested: tuple[str, ...] = Field(min_length=1)
    packages: tuple[LockedDeb, ...]

    def sha256sums(self) -> list[str]:
        """``sha256sum -c`` lines for the files as the build context holds them."""
        return [f"{deb.sha256}  {deb.file_name}" for deb in self.packages]


@functools.cache
def _read_lock(path: Path) -> PackageLock:
    field = "package_lock"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(path, field, f"cannot read the package lock: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise CatalogError(path, field, f"not YAML: {exc}") from None
    try:
        return PackageLock.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or None
        raise CatalogError(path, where, error["msg"]) from None


def lock_path(recipe_path: Path, name: str) -> Path:
    """Where a recipe's package lock lives: beside it, never a link or outside its folder."""
    folder = recipe_path.parent.resolve()
    path = folder / name
    if path.is_symlink() or not path.resolve().is_relative_to(folder):
        raise CatalogError(recipe_path, "build.package_lock", f"{name!r} is outside the recipe")
    return path


def check_lock(recipe_path: Path, name: str) -> None:
    """A lock file that exists reads as one (a missing one is reported when a build uses it,
    so that `farm lock` can write it)."""
    path = lock_path(recipe_path, name)
    if path.exists():
        _read_lock(path)


def load_lock(recipe_path: Path, name: str, requested: Sequence[str]) -> PackageLock:
    """The lock a recipe names, checked to be for the packages the build asks for."""
    path = lock_path(recipe_path, name)
    if not path.is_file():
        raise CatalogError(
            recipe_path,
            "build.package_lock",
            f"{name!r} does not exist",
            hint="write it with: farm lock RECIPE --target TARGET",
        )
    lock = _read_lock(path)
    if sorted(lock.requested) != sorted(requested):
        raise CatalogError(
            path,
            "requested",
            f"locks {', '.join(sorted(lock.requested))} but the build installs "
            f"{', '.join(sorted(requested))}",
            hint=f"refresh it with: farm lock RECIPE --target {lock.target}",
        )
    return lock


def fetch_debs(
    lock: PackageLock, directory: Path, cache: Path, mirrors: Mirrors, say: Progress
) -> list[Path]:
    """Every locked file, checked against its pin, linked or copied into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    placed = []
    for deb in lock.packages:
        url = f"{mirrors.debian.rstrip('/')}/{deb.file}"
        cached = download_path(cache, deb.sha256, deb.file_name)
        fetched = fetch_url(url, deb.sha256, cached, f"{deb.name} {deb.version}", say)
        placed.append(place_cached(fetched, directory / deb.file_name))
    return placed


def parse_print_uris(output: Iterable[str]) -> list[LockedDeb]:
    """The files ``apt-get install --print-uris`` names, as locked packages."""
    found = []
    for line in output:
        match = _PRINT_URI.match(line.strip())
        if not match:
            continue
        file_name = match["file"]
        name, version, arch = file_name.removesuffix(".deb").split("_", 2)
        url = unquote(match["url"])
        if "/pool/" not in url:
            continue  # not a mirror's pool file
        pool = url[url.index("/pool/") + 1 :]
        found.append(
            LockedDeb(
                name=name,
                version=_unquote_version(version),
                architecture=arch,
                file=pool,
                sha256=match["sha"],
                size=int(match["size"]),
            )
        )
    return sorted(found, key=lambda deb: deb.name)


def _unquote_version(text: str) -> str:
    # apt writes an epoch's colon as %3a in file names and URLs.
    return text.replace("%3a", ":")


def dump_lock(lock: PackageLock) -> str:
    header = (
        "# Written by `farm lock`: every Debian package installing the requested packages\n"
        "# into the base image fetches, pinned by pool path and sha256. Refresh it with\n"
        f"# `farm lock RECIPE --target {lock.target}`; do not edit by hand.\n"
    )
    body = yaml.safe_dump(lock.model_dump(mode="json"), sort_keys=False, width=200)
    return header + body


@dataclasses.dataclass(frozen=True, kw_only=True)
class LockedFiles:
    """A lock and where its files come from: what a stage needs to put them in a context."""

    lock: PackageLock
    cache: Path
    mirrors: Mirrors

    def place(self, context: Path, say: Progress) -> list[Path]:
        return fetch_debs(self.lock, context / DEBS_DIR, self.cache, self.mirrors, say)
