"""``farm lock``: pin the Debian packages a build installs into the target, file by file.

apt, in the target's own base image (under QEMU for an arm64 target), is asked
which files installing the build's target packages would download
(``apt-get install --print-uris``: URL, size and the SHA-256 of the signed
index). Those become the recipe's package lock (:mod:`farm.debs`), written
beside the recipe; the build and repair stages then install exactly those
files, checked again, without reaching the archive.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from farm.baseimage import ensure_base_image
from farm.catalog import Entry
from farm.cudastack import Mirrors
from farm.debs import LOCK_SCHEMA, PackageLock, dump_lock, lock_path, parse_print_uris
from farm.engine import Engine
from farm.errors import BuildFailed, UsageError
from farm.models import Recipe, Target
from farm.runner import EngineRunner

LOCK_TIMEOUT_S = 1800
# Reads the index and asks apt what it would fetch; nothing is installed.
_ASK_APT = (
    "set -e; rm -f /etc/apt/apt.conf.d/docker-clean; apt-get update -qq >&2; "
    "apt-get install --print-uris -qq --no-install-recommends -o Acquire::ForceHash=SHA256 "
    '"$@"'
)


@dataclass(frozen=True, kw_only=True)
class WrittenLock:
    path: Path
    lock: PackageLock
    changed: bool


def default_lock_name(recipe: str, target: str) -> str:
    return f"locks/{recipe}.{target}.yaml"


def write_lock(
    entry: Entry[Recipe],
    target: Target,
    engine: Engine,
    cache: Path,
    mirrors: Mirrors,
    say: Callable[[str], None],
) -> WrittenLock:
    """Ask apt in the target's base image and write the recipe's lock for ``target``."""
    build = entry.model.for_target(target.name).build
    requested = build.target_packages()
    if not requested:
        raise UsageError(
            f"{entry.model.name} installs no target packages for {target.name}: nothing to lock"
        )
    name = getattr(build, "package_lock", None) or default_lock_name(entry.model.name, target.name)
    path = lock_path(entry.path, name)
    image = ensure_base_image(target, engine, cache, say, mirrors).reference
    with EngineRunner(engine, "lock", say) as runner:
        result = runner.container(
            image,
            ["sh", "-c", _ASK_APT, "sh", *requested],
            platform=target.platform,
            network="bridge",
            timeout=LOCK_TIMEOUT_S,
        )
    if result.returncode != 0:
        raise BuildFailed(
            f"apt in {image} cannot install {', '.join(requested)}: {result.failing_line()}"
        )
    packages = parse_print_uris(result.output.splitlines())
    if not packages:
        raise BuildFailed(
            f"apt in {image} names no file to fetch for {', '.join(requested)}: "
            "the image has them all, or apt's answer was not understood; see above"
        )
    lock = PackageLock(
        schema_version=LOCK_SCHEMA,
        target=target.name,
        base_image=image,
        requested=tuple(requested),
        packages=tuple(packages),
    )
    text = dump_lock(lock)
    changed = not path.is_file() or path.read_text(encoding="utf-8") != text
    if changed:
        _write_atomically(path, text)
    return WrittenLock(path=path, lock=lock, changed=changed)


def _write_atomically(path: Path, text: str) -> None:
    """A reader (a build started meanwhile) never sees half a lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
