"""Checks every library auditwheel grafted into a repaired wheel, inside the target image.

Run by the repair stage's last step with the repair venv's interpreter (the target's own
Python, under QEMU on x86_64), after ``auditwheel repair``:

    python grafted.py --report OUT.json --before IN.whl [--provided GLOB ...] WHEEL

For each file in the wheel's ``<name>.libs/``:

* the original is found among the image's libraries: auditwheel names a grafted copy
  ``<base>-<first 8 hex of the original's sha256>.<rest>`` (auditwheel/repair.py, copylib);
* every section the loader maps (SHF_ALLOC, with file contents) must be mapped with the
  original's bytes at the original's address, except ``.dynamic`` and ``.dynstr``, the two
  that setting a soname and an RPATH rewrite; what only the dynamic loader reads (notes,
  hash tables, version and relocation tables), which patchelf may move and points to anew,
  must hold the original's bytes wherever it is; ``.dynsym``'s symbols must be equal but for
  their section indices. Code and data (``.text``, ``.rodata``,
  ``.data``, ``.init_array``, ``.rela.dyn``, a library's own sections such as protobuf's
  ``protodesc_cold``, ...) damaged or moved by the patcher shows here even where loading does
  not fail (patchelf 0.17 moved protobuf's ``protodesc_cold`` to make room for program
  headers, while the code still reads it at its old address);
* it is loaded once, in a child process with core dumps off (``ctypes.CDLL``), so static
  initialisers run; a library needing one the target provides at run time (the driver's
  ``libcuda.so.1``) that the image lacks is skipped with that reason.

The report always comes out (exit 0); the stage judges it. Only the standard library and
pyelftools (auditwheel's own dependency) are used.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

REWRITTEN = frozenset({".dynamic", ".dynstr"})
# What only the dynamic loader reads, found through .dynamic's tags or program headers, which
# patchelf updates when it moves these to make room: moved is fine, changed is not.
_LOADER_DATA = re.compile(
    r"^(\.note(\..*)?|\.interp|\.gnu\.hash|\.hash|\.dynsym|\.gnu\.version(_[rd])?"
    r"|\.rela?\.(dyn|plt)|\.relr\.dyn)$"
)
# /usr/lib first: on merged-/usr systems /lib is a link to it, and /usr/lib is the real path.
LIBRARY_DIRS = ("/usr/lib", "/lib", "/usr/local/lib", "/opt")
LOAD_TIMEOUT_S = 600
_GRAFTED = re.compile(r"^(?P<base>.+)-(?P<short>[0-9a-f]{8})\.(?P<rest>.+)$")
_MISSING = re.compile(r"^(?P<lib>\S+): cannot open shared object file")
_LOADER = "import ctypes, sys\nctypes.CDLL(sys.argv[1])\n"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_original(name: str) -> Path | None:
    """The image's library whose sha256 auditwheel put in the grafted copy's name."""
    match = _GRAFTED.match(name)
    if match is None:
        return None
    wanted = f"{match['base']}.{match['rest']}"
    for top in LIBRARY_DIRS:
        for root, _dirs, files in os.walk(top):
            if wanted in files:
                path = Path(root) / wanted
                if path.is_file() and sha256(path).startswith(match["short"]):
                    return path
    return None


def _loaded_bytes(elf: ELFFile, address: int, size: int) -> bytes | None:
    """What the loader maps at ``address`` from the file, or None outside every segment."""
    for segment in elf.iter_segments():
        start, filesz = segment["p_vaddr"], segment["p_filesz"]
        if segment["p_type"] == "PT_LOAD" and start <= address and address + size <= start + filesz:
            elf.stream.seek(segment["p_offset"] + address - start)
            return elf.stream.read(size)
    return None


def _symbols(elf: ELFFile) -> list[tuple[object, ...]]:
    """.dynsym without section indices, which change when the patcher reorders headers."""
    table = elf.get_section_by_name(".dynsym")
    if not isinstance(table, SymbolTableSection):
        return []
    return [
        (symbol.name, symbol["st_value"], symbol["st_size"], symbol["st_info"], symbol["st_other"])
        for symbol in table.iter_symbols()
    ]


def compare(grafted: Path, original: Path) -> tuple[list[str], list[str]]:
    """The sections compared, and those the grafted copy does not map with the original's
    bytes at the original's address (code refers to data by address: a section moved
    elsewhere is as broken as one overwritten)."""
    with original.open("rb") as before_file, grafted.open("rb") as after_file:
        before, after = ELFFile(before_file), ELFFile(after_file)
        compared, differ = [], []
        for section in before.iter_sections():
            if (
                not section["sh_flags"] & SH_FLAGS.SHF_ALLOC
                or section["sh_type"] == "SHT_NOBITS"
                or section.name in REWRITTEN
            ):
                continue
            compared.append(section.name)
            if section.name == ".dynsym":
                same = _symbols(before) == _symbols(after)
            elif _LOADER_DATA.match(section.name):
                moved = after.get_section_by_name(section.name)
                same = moved is not None and moved.data() == section.data()
            else:
                loaded = _loaded_bytes(after, section["sh_addr"], section["sh_size"])
                same = loaded == section.data()
            if not same:
                differ.append(section.name)
    return compared, differ


def _no_core() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def load(path: Path, provided: list[str]) -> dict[str, str]:
    """Load the library in a child; its verdict and the loader's (or the crash's) words."""
    try:
        child = subprocess.run(
            [sys.executable, "-c", _LOADER, str(path)],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=LOAD_TIMEOUT_S,
            preexec_fn=_no_core,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"load": "failed", "detail": f"did not load within {LOAD_TIMEOUT_S} s"}
    if child.returncode == 0:
        return {"load": "ok", "detail": ""}
    lines = [line.strip() for line in child.stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else "no output"
    missing = _MISSING.search(last.split("OSError: ")[-1])
    if missing and any(fnmatch.fnmatchcase(missing["lib"], glob) for glob in provided):
        return {"load": "skipped", "detail": f"needs {missing['lib']}, which the target provides"}
    return {"load": "failed", "detail": first_fatal(lines, child.returncode)}


def first_fatal(lines: list[str], returncode: int) -> str:
    found = next(
        (line for line in lines if re.search(r"\bFATAL\b|CHECK failed|terminate called", line)),
        None,
    ) or next((line for line in reversed(lines) if "Error" in line), lines[-1] if lines else "")
    if returncode < 0:
        return f"{found} (ended by {signal.Signals(-returncode).name})"
    return found


def check_wheel(wheel: Path, before: Path, provided: list[str]) -> list[dict[str, object]]:
    """Each library the repair added to ``wheel`` (``before`` is the wheel it repaired)."""
    results: list[dict[str, object]] = []
    with zipfile.ZipFile(before) as archive:
        had = set(archive.namelist())
    with tempfile.TemporaryDirectory() as scratch, zipfile.ZipFile(wheel) as archive:
        members = [
            name
            for name in archive.namelist()
            if name.split("/")[0].endswith(".libs") and not name.endswith("/") and name not in had
        ]
        archive.extractall(scratch, members)
        for member in sorted(members):
            path = Path(scratch) / member
            entry: dict[str, object] = {"library": member}
            original = find_original(path.name)
            if original is None:
                entry.update(original=None, compared=[], differ=[])
            else:
                compared, differ = compare(path, original)
                entry.update(original=str(original), compared=compared, differ=differ)
            entry.update(load(path, provided))
            results.append(entry)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--provided", action="append", default=[])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("wheel", type=Path)
    args = parser.parse_args()
    results = check_wheel(args.wheel, args.before, args.provided)
    args.report.write_text(json.dumps({"libraries": results}, indent=1) + "\n", encoding="utf-8")
    for entry in results:
        state = "differs" if entry["differ"] else entry["load"]
        print(f"grafted {entry['library']}: {state} {entry.get('detail', '')}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
