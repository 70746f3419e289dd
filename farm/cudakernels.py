"""Which GPUs a CUDA library can run kernels on: its fat binary, read from the ELF file.

nvcc links device code into a host library's ``.nv_fatbin`` section: one or more
containers (magic ``0xBA55ED50``, a 16-byte header giving the size of what follows),
each a run of entries, an entry being a header and its payload. An entry's header
holds its kind (1: PTX, 2 or 16: a cubin), the SM architecture (``87`` for sm_87)
and flags that mark arch-specific (``sm_90a``) and family-specific (``sm_110f``)
code. This layout is NVIDIA's fatbinary.h as nvcc writes it; the flag bits were
checked against ``cuobjdump --list-elf --list-ptx`` of CUDA 13.5 on nvcc 13.0's
output and on cuDNN's and onnxruntime's wheels (tests/unit/test_cudakernels.py).

Whether an image runs on a GPU follows CUDA's compatibility rules (CUDA C++
Programming Guide, "Binary Compatibility" and "Feature availability"):

* a cubin for sm_XY runs on devices of the same major version X and a minor
  version of at least Y, never across majors; an ``f`` cubin likewise within its
  family; an ``a`` cubin only on exactly sm_XY;
* PTX for compute_XY is compiled by the driver for any device of compute
  capability XY or newer (``a`` PTX: only XY itself; ``f`` PTX: its family).
"""

from __future__ import annotations

import io
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

FATBIN_SECTION = ".nv_fatbin"
CONTAINER_MAGIC = 0xBA55ED50
_CONTAINER = struct.Struct("<IHHQ")  # magic, version, header size, size of the entries
_ENTRY = struct.Struct("<HHIQ")  # kind, version, header size, payload size (padded)
_ARCH_AT, _FLAGS_AT, _ENTRY_MIN = 28, 40, 64
ARCH_SPECIFIC, FAMILY_SPECIFIC = 1 << 20, 1 << 21
KINDS: dict[int, Literal["cubin", "ptx"]] = {1: "ptx", 2: "cubin", 16: "cubin"}


@dataclass(frozen=True, order=True)
class KernelImage:
    """One kind of device code for one architecture: ``cubin`` sm_87, ``ptx`` compute_110."""

    sm: int  # 87, 110, 121
    variant: Literal["", "a", "f"]
    kind: Literal["cubin", "ptx"]

    @property
    def name(self) -> str:
        prefix = "sm" if self.kind == "cubin" else "compute"
        return f"{prefix}_{self.sm}{self.variant}"

    def runs_on(self, device_sm: int) -> bool:
        """CUDA's rule for this image on a device of compute capability ``device_sm``."""
        if self.variant == "a":
            return device_sm == self.sm
        same_major = device_sm // 10 == self.sm // 10
        if self.kind == "cubin" or self.variant == "f":
            return same_major and device_sm >= self.sm
        return device_sm >= self.sm


def kernel_images(elf_bytes: bytes) -> frozenset[KernelImage]:
    """Every kind of device code in an ELF file's fat binary (empty without one)."""
    try:
        section = ELFFile(io.BytesIO(elf_bytes)).get_section_by_name(FATBIN_SECTION)
    except ELFError:
        return frozenset()
    if section is None or section["sh_type"] == "SHT_NOBITS":
        return frozenset()
    return frozenset(_images(section.data()))


def _images(data: bytes) -> list[KernelImage]:
    found: list[KernelImage] = []
    position = 0
    while position + _CONTAINER.size <= len(data):
        magic, _version, header, size = _CONTAINER.unpack_from(data, position)
        if magic != CONTAINER_MAGIC:
            position += 8  # containers are 8-byte aligned; padding lies between them
            continue
        end = min(position + header + size, len(data))
        found += _entries(data, position + header, end)
        position = max(end, position + _CONTAINER.size)
    return found


def _entries(data: bytes, position: int, end: int) -> list[KernelImage]:
    found = []
    while position + _ENTRY_MIN <= end:
        kind, _version, header, payload = _ENTRY.unpack_from(data, position)
        if header < _ENTRY_MIN:
            break  # not an entry: the container is damaged, stop reading it
        (sm,) = struct.unpack_from("<I", data, position + _ARCH_AT)
        (flags,) = struct.unpack_from("<Q", data, position + _FLAGS_AT)
        if kind in KINDS:
            variant: Literal["", "a", "f"] = (
                "a" if flags & ARCH_SPECIFIC else "f" if flags & FAMILY_SPECIFIC else ""
            )
            found.append(KernelImage(sm=sm, variant=variant, kind=KINDS[kind]))
        position += header + payload
    return found


def uncovered(images: frozenset[KernelImage], architectures: tuple[str, ...]) -> list[str]:
    """The target's SM architectures (``"87"``) that no image can run on."""
    return [arch for arch in architectures if not any(i.runs_on(int(arch)) for i in images)]


def describe(images: frozenset[KernelImage]) -> str:
    """``cubins for sm_89, sm_90a and no PTX``: what a library carries, for a problem line."""
    cubins = [i.name for i in sorted(images) if i.kind == "cubin"]
    ptx = [i.name for i in sorted(images) if i.kind == "ptx"]
    parts = [f"cubins for {', '.join(cubins)}" if cubins else "no cubins"]
    parts.append(f"PTX for {', '.join(ptx)}" if ptx else "no PTX")
    return " and ".join(parts)


def wheel_coverage(wheel: Path, architectures: tuple[str, ...]) -> list[dict[str, Any]]:
    """Each CUDA library in a wheel: its device code and the target SMs none of it runs on."""
    found = []
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if ".so" not in Path(member).name:
                continue
            images = kernel_images(archive.read(member))
            if images:
                found.append(
                    {
                        "path": member,
                        "kernels": [image.name for image in sorted(images)],
                        "uncovered": [f"sm_{arch}" for arch in uncovered(images, architectures)],
                    }
                )
    return found
