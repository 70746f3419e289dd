"""Small real wheels for publishing tests: valid metadata and RECORD, content of our choosing,
and the broken variants a wheel check must refuse."""

from __future__ import annotations

import base64
import hashlib
import re
import struct
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

EM_AARCH64, EM_X86_64 = 183, 62
FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # a fixed timestamp keeps identical arguments byte-identical


def make_wheel(
    directory: Path,
    name: str = "farm-probe",
    version: str = "1.0",
    *,
    payload: bytes = b"",
    requires: tuple[str, ...] = (),
    tag: str = "py3-none-any",
    files: Mapping[str, bytes] | None = None,
) -> Path:
    """A wheel whose bytes depend on ``payload`` (and ``files``, more members listed in
    RECORD): same arguments, same file."""
    directory.mkdir(parents=True, exist_ok=True)
    dist = re.sub(r"[-_.]+", "_", name)  # PEP 427 escaping of the distribution name
    info = f"{dist}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {requirement}\n" for requirement in requires)
    pure = "true" if tag.endswith("-any") else "false"
    members = {
        f"{dist}/__init__.py": b"",
        f"{dist}/payload.bin": payload,
        **(files or {}),
        f"{info}/METADATA": metadata.encode(),
        f"{info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: farm-tests\nRoot-Is-Purelib: {pure}\nTag: {tag}\n"
        ).encode(),
    }
    record = [f"{path},sha256={_digest(data)},{len(data)}" for path, data in members.items()]
    members[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    path = directory / f"{dist}-{version}-{tag}.whl"
    _write(path, members.items())
    return path


def rewrite(path: Path, changes: Mapping[str, bytes | None]) -> Path:
    """The wheel with members replaced, added (``None``: dropped), RECORD left as it was."""
    with zipfile.ZipFile(path) as archive:
        members = [(name, archive.read(name)) for name in archive.namelist()]
    kept = [(name, data) for name, data in members if name not in changes]
    kept += [(name, data) for name, data in changes.items() if data is not None]
    _write(path, kept)
    return path


def elf(machine: int) -> bytes:
    """A 64-bit little-endian ELF header for ``machine``: enough for anyone reading e_machine."""
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    return ident + struct.pack("<HHI", 3, machine, 1) + bytes(40)


def _write(path: Path, members: Iterable[tuple[str, bytes]]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members:
            archive.writestr(zipfile.ZipInfo(member, date_time=FIXED_TIME), data)


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
