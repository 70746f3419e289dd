"""PEP 427 build numbers: a rebuilt wheel gets a new file name, never new bytes under an old one.

When the same version is built again with a different build key (a recipe
fix, a new base image) after its wheel was published, the index already holds
that file name. The new wheel then carries the next build number: the file
name gains ``-N`` after the version and ``.dist-info/WHEEL`` a ``Build: N``
line (RECORD regenerated). Installers prefer the higher build number of
the same version. The rewrite goes through :mod:`farm.wheelzip`, the same
normal form as every wheel the farm hands on: the same wheel and number
always give the same bytes, so a rerun recognises its own earlier upload.

It also reads the requirements a wheel declares, which the smoke stage plans from.
"""

from __future__ import annotations

import email.parser
import zipfile
from pathlib import Path

from packaging.utils import parse_wheel_filename

from farm.errors import UsageError
from farm.wheelzip import dist_info, rewrite_wheel


def split_name(filename: str) -> tuple[str, str, int, str]:
    """(normalised name, version, build number or 0, tag string) of a wheel file name."""
    name, version, build, _ = parse_wheel_filename(filename)
    tag_text = filename[: -len(".whl")].rsplit("-", 3)[1:]
    return str(name), str(version), build[0] if build else 0, "-".join(tag_text)


def requires_dist(wheel: Path) -> tuple[str, ...]:
    """The ``Requires-Dist`` lines of a wheel's ``.dist-info/METADATA``."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
            text = archive.read(names[0]).decode("utf-8", errors="replace") if names else None
    except zipfile.BadZipFile as exc:
        raise UsageError(f"{wheel.name}: not a wheel: {exc}") from exc
    if text is None:
        raise UsageError(f"{wheel.name}: not a wheel: no .dist-info/METADATA")
    return tuple(email.parser.HeaderParser().parsestr(text).get_all("Requires-Dist") or ())


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
    with zipfile.ZipFile(wheel) as source:
        wheel_meta = f"{dist_info(source.namelist())}/WHEEL"
        new_meta = _with_build_line(source.read(wheel_meta), number)
    # The wheel's own timestamp is kept: renumbering changes the name and WHEEL only.
    return rewrite_wheel(wheel, target, replace={wheel_meta: new_meta})


def _with_build_line(metadata: bytes, number: int) -> bytes:
    """WHEEL with ``Build: number``, among the headers: a blank line ends an email-style
    header block (WHEEL files often end with one), and a Build line after it would be body
    that neither pip nor any other reader sees."""
    lines = [
        line
        for line in metadata.decode().splitlines()
        if line.strip() and not line.startswith("Build:")
    ]
    return ("\n".join([*lines, f"Build: {number}"]) + "\n").encode()
