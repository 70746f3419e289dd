"""Deterministic wheel archives: the same files always give the same bytes.

Every wheel the farm hands on (repaired and stamped with its provenance, or
renumbered) is written by :func:`rewrite_wheel`:

* entries sorted by name, the ``.dist-info`` directory last and its ``RECORD``
  the very last entry, as the wheel spec (PEP 427, "Recommended archiver
  features") recommends; no directory entries;
* one timestamp for every entry (SOURCE_DATE_EPOCH, never before 1980, the
  first time a zip can hold);
* permissions 0644, or 0755 for a file any execute bit was set on, whatever
  the umask of the machine that wrote the files;
* deflate at zlib's default level (6) for every entry;
* ``RECORD`` regenerated: every file with its sha256 and size.

So the bytes depend only on the files' contents, names and executability, and
on the host's zlib (the compressed streams come from it): two hosts with
different zlib builds (zlib-ng, say) give equal contents in different bytes,
which :func:`wheel_differences` tells apart.
"""

from __future__ import annotations

import base64
import filecmp
import hashlib
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from farm.errors import UsageError

EARLIEST = (1980, 1, 1, 0, 0, 0)  # zip timestamps start in 1980
DateTime = tuple[int, int, int, int, int, int]


@dataclass(frozen=True, kw_only=True)
class Member:
    """One file of a wheel: its name, sha256 (RECORD's encoding), size and executability."""

    name: str
    digest: str
    size: int
    executable: bool


def date_time(epoch: int) -> DateTime:
    """A zip timestamp for SOURCE_DATE_EPOCH ``epoch`` (UTC), clamped to 1980."""
    stamp: DateTime = tuple(time.gmtime(epoch)[:6])  # type: ignore[assignment]
    return max(stamp, EARLIEST)


def record_digest(data: bytes) -> str:
    """``sha256=<urlsafe base64, unpadded>``, as RECORD writes hashes."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def dist_info(names: list[str]) -> str:
    """The ``<name>-<version>.dist-info`` directory of a wheel, from its entry names."""
    found = sorted({n.split("/", 1)[0] for n in names if n.endswith(".dist-info/WHEEL")})
    if len(found) != 1:
        raise UsageError(f"a wheel has one .dist-info/WHEEL; found {len(found)}")
    return found[0]


def archive_order(names: list[str], info_dir: str) -> list[str]:
    """Sorted, ``.dist-info`` last and its RECORD the very last (PEP 427)."""
    record = f"{info_dir}/RECORD"
    return sorted(
        (n for n in names if n != record),
        key=lambda n: (n.startswith(f"{info_dir}/"), n),
    ) + ([record] if record in names else [])


def rewrite_wheel(
    source: Path,
    target: Path,
    *,
    replace: Mapping[str, bytes] | None = None,
    stamp: DateTime | None = None,
) -> Path:
    """``source`` written to ``target`` in the farm's normal form, with the files in
    ``replace`` added or replaced; every entry gets ``stamp``, by default the newest
    timestamp in ``source`` (so rewriting a normal wheel keeps its time)."""
    changes = dict(replace or {})
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.partial")
    with zipfile.ZipFile(source) as old:
        infos = {info.filename: info for info in old.infolist() if not info.is_dir()}
        names = [*infos, *(name for name in changes if name not in infos)]
        info_dir = dist_info(names)
        when = stamp or max((info.date_time for info in infos.values()), default=EARLIEST)
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as new:
            lines = []
            for name in archive_order(names, info_dir):
                if name == f"{info_dir}/RECORD":
                    continue
                executable = name in infos and _executable(infos[name])
                entry = _entry(name, executable, when)
                if name in changes:
                    new.writestr(entry, changes[name])
                    digest, size = record_digest(changes[name]), len(changes[name])
                else:
                    digest, size = _copy(old, infos[name], new, entry)
                lines.append(f"{name},{digest},{size}\n")
            lines.append(f"{info_dir}/RECORD,,\n")
            new.writestr(_entry(f"{info_dir}/RECORD", False, when), "".join(lines))
    return temporary.replace(target)


def _executable(info: zipfile.ZipInfo) -> bool:
    return bool((info.external_attr >> 16) & 0o111)


def _entry(name: str, executable: bool, when: DateTime) -> zipfile.ZipInfo:
    entry = zipfile.ZipInfo(name, date_time=when)
    entry.create_system = 3  # Unix, so that the permission bits are read
    entry.external_attr = (0o100755 if executable else 0o100644) << 16
    entry.compress_type = zipfile.ZIP_DEFLATED  # at zlib's default level, 6
    return entry


def _copy(
    old: zipfile.ZipFile, info: zipfile.ZipInfo, new: zipfile.ZipFile, entry: zipfile.ZipInfo
) -> tuple[str, int]:
    """Stream one entry across (wheels may hold gigabytes); its RECORD hash and size."""
    entry.file_size = info.file_size  # lets zipfile choose ZIP64 up front, as it must
    digest = hashlib.sha256()
    with old.open(info) as reader, new.open(entry, "w") as writer:
        while chunk := reader.read(1 << 20):
            digest.update(chunk)
            writer.write(chunk)
    encoded = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
    return f"sha256={encoded}", info.file_size


def members(wheel: Path) -> list[Member]:
    """The files of a wheel in archive order, each hashed."""
    found = []
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            digest = hashlib.sha256()
            with archive.open(info) as reader:
                while chunk := reader.read(1 << 20):
                    digest.update(chunk)
            found.append(
                Member(
                    name=info.filename,
                    digest=digest.hexdigest(),
                    size=info.file_size,
                    executable=_executable(info),
                )
            )
    return found


def content_digest(wheel: Path) -> str:
    """sha256 of what a wheel installs, the same for a wheel and its renumbered copies: each
    file's name, executability and sha256, sorted; RECORD (which lists the others) and the
    ``Build:`` line of WHEEL (the PEP 427 build number) are left out."""
    with zipfile.ZipFile(wheel) as archive:
        info_dir = dist_info(archive.namelist())
        wheel_meta = archive.read(f"{info_dir}/WHEEL").decode()
    unnumbered = "".join(
        line for line in wheel_meta.splitlines(keepends=True) if not line.startswith("Build:")
    )
    listing = hashlib.sha256()
    for member in sorted(members(wheel), key=lambda m: m.name):
        if member.name == f"{info_dir}/RECORD":
            continue
        digest = member.digest
        if member.name == f"{info_dir}/WHEEL":
            digest = hashlib.sha256(unnumbered.encode()).hexdigest()
        listing.update(f"{member.name}\0{int(member.executable)}\0{digest}\n".encode())
    return listing.hexdigest()


def wheel_differences(first: Path, second: Path) -> list[str]:
    """What makes two wheels' bytes differ, one line per difference; empty when equal.

    RECORD is named only when no other file differs (it lists the others' hashes)."""
    if filecmp.cmp(first, second, shallow=False):
        return []
    ours = {member.name: member for member in members(first)}
    theirs = {member.name: member for member in members(second)}
    lines = [f"only in {first.name}: {name}" for name in sorted(ours.keys() - theirs.keys())]
    lines += [f"only in {second.name}: {name}" for name in sorted(theirs.keys() - ours.keys())]
    common = sorted(
        ours.keys() & theirs.keys(), key=lambda name: (name.endswith(".dist-info/RECORD"), name)
    )
    for name in common:
        a, b = ours[name], theirs[name]
        if a.digest != b.digest and not (lines and name.endswith(".dist-info/RECORD")):
            lines.append(f"{name}: contents differ ({a.size:,} and {b.size:,} bytes)")
        if a.executable != b.executable:
            lines.append(f"{name}: executable in one wheel only")
    return lines or _archive_differences(first, second)


def _archive_differences(first: Path, second: Path) -> list[str]:
    """Differences of two wheels with the same files: order, timestamps, permissions."""
    with zipfile.ZipFile(first) as a, zipfile.ZipFile(second) as b:
        ours, theirs = a.infolist(), b.infolist()
    lines = []
    if [i.filename for i in ours] != [i.filename for i in theirs]:
        lines.append("the same files in another order")
    by_name = {info.filename: info for info in theirs}
    for info in ours:
        other = by_name[info.filename]
        if info.date_time != other.date_time:
            lines.append(f"{info.filename}: timestamp {info.date_time} and {other.date_time}")
        if info.external_attr != other.external_attr:
            lines.append(
                f"{info.filename}: mode {info.external_attr >> 16:o} and "
                f"{other.external_attr >> 16:o}"
            )
    return lines or [
        "the same files, order, timestamps and modes: the compressed bytes differ "
        "(another zlib, or another compression level)"
    ]
