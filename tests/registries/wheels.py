"""Small real wheels for publishing tests: valid metadata and RECORD, content of our choosing."""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from pathlib import Path


def make_wheel(
    directory: Path,
    name: str = "farm-probe",
    version: str = "1.0",
    *,
    payload: bytes = b"",
    requires: tuple[str, ...] = (),
    tag: str = "py3-none-any",
) -> Path:
    """A pure wheel whose bytes depend on ``payload``: same arguments, same file."""
    directory.mkdir(parents=True, exist_ok=True)
    dist = re.sub(r"[-_.]+", "_", name)  # PEP 427 escaping of the distribution name
    info = f"{dist}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {requirement}\n" for requirement in requires)
    files = {
        f"{dist}/__init__.py": b"",
        f"{dist}/payload.bin": payload,
        f"{info}/METADATA": metadata.encode(),
        f"{info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: farm-tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
        ).encode(),
    }
    record = [f"{path},sha256={_digest(data)},{len(data)}" for path, data in files.items()]
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    path = directory / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in files.items():
            # A fixed timestamp keeps identical arguments byte-identical.
            archive.writestr(zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return path


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
