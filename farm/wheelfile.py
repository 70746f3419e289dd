"""PEP 427 build numbers: a rebuilt wheel gets a new file name, never new bytes under an old one.

When the same version is built again with a different build key (a recipe
fix, a new base image) after its wheel was published, the index already holds
that file name. The new wheel then carries the next build number: the file
name gains ``-N`` after the version and ``.dist-info/WHEEL`` a ``Build: N``
line (RECORD updated to match). Installers prefer the higher build number of
the same version. The rewrite is deterministic: the same wheel and number
always give the same bytes, so a rerun recognises its own earlier upload.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import zipfile
from pathlib import Path

from packaging.utils import parse_wheel_filename

from farm.errors import UsageError


def split_name(filename: str) -> tuple[str, str, int, str]:
    """(normalised name, version, build number or 0, tag string) of a wheel file name."""
    name, version, build, _ = parse_wheel_filename(filename)
    tag_text = filename[: -len(".whl")].rsplit("-", 3)[1:]
    return str(name), str(version), build[0] if build else 0, "-".join(tag_text)


def same_release(a: str, b: str) -> bool:
    """Whether two wheel file names differ at most in their build number."""
    first, second = split_name(a), split_name(b)
    return (first[0], first[1], first[3]) == (second[0], second[1], second[3])


def next_build_number(ours: str, existing: list[str]) -> int:
    """One above the highest build number of the same release in ``existing``."""
    numbers = [split_name(name)[2] for name in existing if same_release(ours, name)]
    return max(numbers, default=0) + 1


def with_build_number(wheel: Path, number: int, directory: Path) -> Path:
    """A copy of ``wheel`` in ``directory`` carrying build number ``number``."""
    parts = wheel.name[: -len(".whl")].split("-")
    if len(parts) == 6:
        parts.pop(2)  # drop an existing build tag
    if len(parts) != 5:
        raise UsageError(f"{wheel.name}: not a wheel file name")
    target = directory / ("-".join([*parts[:2], str(number), *parts[2:]]) + ".whl")
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(target, "w") as copy:
        wheel_meta = next(n for n in source.namelist() if n.endswith(".dist-info/WHEEL"))
        record = wheel_meta[: -len("WHEEL")] + "RECORD"
        new_meta = _with_build_line(source.read(wheel_meta), number)
        for info in source.infolist():
            clone = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            clone.compress_type = info.compress_type
            clone.external_attr = info.external_attr
            clone.create_system = info.create_system
            if info.filename == wheel_meta:
                copy.writestr(clone, new_meta)
            elif info.filename == record:
                copy.writestr(clone, _with_record_line(source.read(record), wheel_meta, new_meta))
            else:
                with source.open(info) as reader, copy.open(clone, "w") as writer:
                    shutil.copyfileobj(reader, writer, 1 << 20)
    return target


def _with_build_line(metadata: bytes, number: int) -> bytes:
    lines = [line for line in metadata.decode().splitlines() if not line.startswith("Build:")]
    return ("\n".join([*lines, f"Build: {number}"]) + "\n").encode()


def _with_record_line(record: bytes, member: str, content: bytes) -> bytes:
    digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
    lines = []
    for line in record.decode().splitlines():
        if line.split(",", 1)[0] == member:
            line = f"{member},sha256={digest},{len(content)}"
        lines.append(line)
    return ("\n".join(lines) + "\n").encode()
