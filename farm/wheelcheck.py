"""Is this file the wheel its name says? The checks of the bytes, before anyone trusts them.

``farm publish`` refuses a wheel with any problem found here before it talks
to an index, and ``farm inspect`` lists the same problems. The rules (PEP 427
and the binary distribution format spec):

* a regular, readable file whose name is a wheel file name;
* a valid zip, every member readable and matching its CRC;
* no member with an absolute name or a ``..`` part, none twice;
* exactly one ``<name>-<version>.dist-info`` directory, of the file name's
  project, holding ``WHEEL``, ``METADATA`` and ``RECORD``;
* ``RECORD`` lists every file exactly once with a hash (sha256 or stronger,
  urlsafe base64 without padding) and a size that match the bytes; only
  ``RECORD`` itself and its signatures may leave them empty;
* every ELF file is code for the architecture of the platform tag, and a
  wheel tagged for any platform holds no ELF file.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import re
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

from packaging.tags import Tag, parse_tag
from packaging.utils import (
    BuildTag,
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

CHUNK = 1 << 20
STRONG_HASHES = frozenset({"sha256", "sha384", "sha512"})
UNHASHED = ("RECORD", "RECORD.jws", "RECORD.p7s")  # in the .dist-info directory
# Platform-tag architecture -> ELF e_machine values that run there (elf.h).
ARCH_MACHINES = {
    "aarch64": {183},
    "x86_64": {62},
    "armv7l": {40},
    "armv6l": {40},
    "i686": {3},
    "i386": {3},
    "ppc64le": {21},
    "ppc64": {21},
    "s390x": {22},
    "riscv64": {243},
}
MACHINE_NAMES = {183: "aarch64", 62: "x86_64", 40: "arm", 3: "i386", 21: "ppc64", 22: "s390x"}


@dataclass(frozen=True)
class WheelProblem:
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.detail}"

    def to_json(self) -> dict[str, str]:
        return {"rule": self.rule, "detail": self.detail}


@dataclass(frozen=True)
class _Recorded:
    """A RECORD line; an empty one (no hash, no size) is false."""

    algorithm: str
    digest: str
    size: int | None

    def __bool__(self) -> bool:
        return bool(self.algorithm)


UNHASHED_ENTRY = _Recorded(algorithm="", digest="", size=None)


def verify_wheel(path: Path) -> list[WheelProblem]:
    """Every problem of the file at ``path`` as a wheel; an empty list is a sound wheel."""
    if not path.is_file():
        kind = "is a directory" if path.is_dir() else "is not a regular file"
        why = kind if path.exists() else "no such file"
        return [WheelProblem("unreadable", why)]
    bad_name = file_name_problem(path.name)
    if bad_name is not None:
        return [bad_name]
    name, version, build, tags = parse_wheel_filename(path.name)
    try:
        with zipfile.ZipFile(path) as archive:
            problems = _verify_archive(archive, str(name), tags)
            if any(problem.rule in _UNREADABLE_LAYOUT for problem in problems):
                return problems
            return problems + _metadata_problems(archive, (str(name), version, build, tags))
    except zipfile.BadZipFile as exc:
        return [WheelProblem("not a zip", str(exc))]
    except OSError as exc:
        return [WheelProblem("unreadable", exc.strerror or str(exc))]


# PEP 427's file name: {distribution}-{version}(-{build tag})?-{python tag}-{abi tag}-{platform
# tag}.whl, each part of letters, digits, "_" and "." (and "+", "!" in the version); tags are
# PEP 425's, "."-joined. Nothing else may reach a command line, a path or a log as a name.
_WHEEL_NAME = re.compile(
    r"^[A-Za-z0-9_.]+-[A-Za-z0-9_.!+]+(-[0-9][A-Za-z0-9_]*)?"
    r"-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+\.whl$"
)


def file_name_problem(name: str) -> WheelProblem | None:
    """What is wrong with a wheel's file name, or None: the PEP 425/427 alphabet first, then
    packaging's parse."""
    if not _WHEEL_NAME.match(name):
        shown = name.encode("unicode_escape").decode()[:120]
        return WheelProblem("file name", f"{shown!r} is not a PEP 427 wheel file name")
    try:
        parse_wheel_filename(name)
    except InvalidWheelFilename as exc:
        return WheelProblem("file name", f"not a valid wheel file name ({exc})")
    return None


# Problems after which METADATA and WHEEL cannot be read meaningfully.
_UNREADABLE_LAYOUT = frozenset({"unsafe path", "duplicate entry", "dist-info"})


def _metadata_problems(
    archive: zipfile.ZipFile, parsed: tuple[str, Version, BuildTag, frozenset[Tag]]
) -> list[WheelProblem]:
    """METADATA's name and version and WHEEL's tags and build agree with the file name (an
    installer finds a wheel by its name and installs what its metadata says)."""
    name, version, build, tags = parsed
    try:
        dist_info = next(n.split("/")[0] for n in archive.namelist() if ".dist-info/" in n)
        metadata = Parser().parsestr(
            archive.read(f"{dist_info}/METADATA").decode("utf-8", "replace")
        )
        wheel = Parser().parsestr(archive.read(f"{dist_info}/WHEEL").decode("utf-8", "replace"))
    except (StopIteration, KeyError, zipfile.BadZipFile, zlib.error):
        return []  # reported as a dist-info or corrupt-member problem
    problems = []
    if canonicalize_name(metadata.get("Name", "")) != canonicalize_name(name):
        problems.append(f"METADATA names {metadata.get('Name')!r}, the file name {name!r}")
    try:
        same_version = Version(metadata.get("Version", "")) == version
    except InvalidVersion:
        same_version = False
    if not same_version:
        problems.append(
            f"METADATA has version {metadata.get('Version')!r}, the file name {version}"
        )
    listed = frozenset(tag for line in wheel.get_all("Tag", []) for tag in parse_tag(line))
    if listed != tags:
        problems.append(
            f"WHEEL's tags {', '.join(sorted(map(str, listed))) or 'none'} are not the file "
            f"name's {', '.join(sorted(map(str, tags)))}"
        )
    wheel_build = wheel.get("Build")
    if (wheel_build or "") != (f"{build[0]}{build[1]}" if build else ""):
        problems.append(f"WHEEL's Build {wheel_build!r} is not the file name's build tag")
    return [WheelProblem("metadata", problem) for problem in problems]


def platform_arch(platform: str) -> str | None:
    """The architecture a platform tag names (``manylinux_2_35_aarch64``: aarch64)."""
    if platform == "any":
        return None
    for prefix in ("manylinux_", "musllinux_"):
        if platform.startswith(prefix):
            return platform.split("_", 3)[3]
    return platform.split("_", 1)[1] if "_" in platform else platform


def _verify_archive(
    archive: zipfile.ZipFile, project: str, tags: frozenset[Tag]
) -> list[WheelProblem]:
    members = [info for info in archive.infolist() if not info.is_dir()]
    problems = _names([info.filename for info in archive.infolist()])
    if problems:
        return problems  # nothing below is meaningful for such an archive
    dist_info = _dist_info([info.filename for info in members], project)
    if isinstance(dist_info, WheelProblem):
        return [dist_info]
    record, problems = _record(archive, dist_info)
    unhashed = {dist_info + name for name in UNHASHED}
    machines: dict[str, int] = {}
    for info in members:
        recorded = record.pop(info.filename, None)
        if recorded is None and info.filename not in unhashed:
            problems.append(WheelProblem("RECORD", f"{info.filename} is not listed"))
            continue
        problems += _check_member(archive, info, recorded, machines)
    problems += [
        WheelProblem("RECORD", f"{name} is listed but not in the wheel") for name in record
    ]
    return problems + _check_machines(machines, tags)


def _names(names: list[str]) -> list[WheelProblem]:
    problems, seen = [], set()
    for name in names:
        parts = re.split(r"[/\\]", name)
        if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name) or ".." in parts:
            problems.append(WheelProblem("unsafe path", f"{name} would land outside the target"))
        if name in seen:
            problems.append(WheelProblem("duplicate entry", f"{name} is in the zip twice"))
        seen.add(name)
    return problems


def _dist_info(names: list[str], project: str) -> str | WheelProblem:
    """The one ``.dist-info`` directory (with its slash), or what is wrong with it."""
    found = sorted({name.split("/")[0] for name in names if "/" in name})
    dirs = [name for name in found if name.endswith(".dist-info")]
    if len(dirs) != 1:
        return WheelProblem("dist-info", f"{len(dirs)} .dist-info directories, not one")
    owner = dirs[0][: -len(".dist-info")].rsplit("-", 1)[0]
    if canonicalize_name(owner) != canonicalize_name(project):
        return WheelProblem("dist-info", f"{dirs[0]} is not of project {project}")
    missing = [f for f in ("WHEEL", "METADATA", "RECORD") if f"{dirs[0]}/{f}" not in names]
    if missing:
        return WheelProblem("dist-info", f"{dirs[0]} has no {', '.join(missing)}")
    return f"{dirs[0]}/"


def _record(
    archive: zipfile.ZipFile, dist_info: str
) -> tuple[dict[str, _Recorded], list[WheelProblem]]:
    """RECORD's entries by path, and its malformed lines."""
    try:
        text = archive.read(f"{dist_info}RECORD").decode("utf-8")
    except (zipfile.BadZipFile, zlib.error, EOFError, UnicodeDecodeError) as exc:
        return {}, [WheelProblem("RECORD", f"unreadable ({exc})")]
    entries: dict[str, _Recorded] = {}
    problems = []
    for number, row in enumerate(csv.reader(text.splitlines()), 1):
        if not row:
            continue
        entry = _record_row(row, dist_info)
        if isinstance(entry, str):
            problems.append(WheelProblem("RECORD", f"line {number}: {entry}"))
        elif row[0] in entries:
            problems.append(WheelProblem("RECORD", f"{row[0]} is listed twice"))
        else:
            entries[row[0]] = entry
    return entries, problems


def _record_row(row: list[str], dist_info: str) -> _Recorded | str:
    """One RECORD line as an entry, or why it is not one."""
    if len(row) != 3:
        return f"{len(row)} fields, not path,hash,size"
    path, hashed, size = row
    if not hashed and not size and path in (dist_info + name for name in UNHASHED):
        return UNHASHED_ENTRY
    algorithm, _, digest = hashed.partition("=")
    if algorithm not in STRONG_HASHES or not digest:
        return f"{path} has no sha256 (or stronger) hash"
    if not size.isdigit():
        return f"{path} has no size"
    return _Recorded(algorithm=algorithm, digest=digest.rstrip("="), size=int(size))


def _check_member(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    recorded: _Recorded | None,
    machines: dict[str, int],
) -> list[WheelProblem]:
    """Read one member through (CRC checked), compare it with RECORD, note its ELF machine."""
    name = info.filename
    digest = hashlib.new(recorded.algorithm if recorded else "sha256")
    size, head = 0, b""
    try:
        with archive.open(info) as handle:
            while chunk := handle.read(CHUNK):
                head = head or chunk[:20]
                size += len(chunk)
                digest.update(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        return [WheelProblem("corrupt member", f"{name}: {exc}")]
    machine = _elf_machine(head)
    if machine is not None:
        machines[name] = machine
    if not recorded:
        return []  # RECORD itself or a signature of it
    if recorded.size != size:
        return [WheelProblem("RECORD", f"{name} is {size} bytes, RECORD says {recorded.size}")]
    actual = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
    if actual != recorded.digest:
        return [WheelProblem("RECORD", f"{name}: {recorded.algorithm} differs from RECORD")]
    return []


def _elf_machine(head: bytes) -> int | None:
    """e_machine of an ELF header (byte order from EI_DATA), None for anything else."""
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[18:20], "big" if head[5] == 2 else "little")


def _check_machines(machines: dict[str, int], tags: Iterable[Tag]) -> list[WheelProblem]:
    arches = {platform_arch(tag.platform) for tag in tags}
    if arches == {None}:
        return [
            WheelProblem(
                "architecture",
                f"{name} is {_machine(m)} code, but the wheel is tagged for any platform",
            )
            for name, m in machines.items()
        ]
    if not all(arch in ARCH_MACHINES for arch in arches):
        return []  # a platform this table does not know: no verdict
    return [
        WheelProblem("architecture", f"{name} is {_machine(m)} code, the wheel is tagged {arch}")
        for name, m in machines.items()
        for arch in sorted(a for a in arches if a is not None)
        if m not in ARCH_MACHINES[arch]
    ]


def _machine(number: int) -> str:
    return MACHINE_NAMES.get(number, f"ELF machine {number}")
