"""Reading CUDA device code from a library's fat binary, and CUDA's rules for running it.

The fat binaries here are assembled byte by byte in the layout nvcc writes (a container
header, then entries of a header and a payload); tests/integration/test_cuda.py checks the
reader against cuobjdump on real nvcc output and on PyPI's onnxruntime-gpu wheel."""

from __future__ import annotations

import struct

import pytest

from farm.cudakernels import (
    ARCH_SPECIFIC,
    CONTAINER_MAGIC,
    FAMILY_SPECIFIC,
    KernelImage,
    describe,
    kernel_images,
    uncovered,
)


def _entry(kind: int, sm: int, flags: int = 0, payload: bytes = b"\x28\xb5\x2f\xfd" * 3) -> bytes:
    padded = payload + b"\0" * (-len(payload) % 8)
    header = bytearray(64)
    struct.pack_into("<HHIQ", header, 0, kind, 0x0101, 64, len(padded))
    struct.pack_into("<I", header, 16, len(payload))
    struct.pack_into("<I", header, 28, sm)
    struct.pack_into("<Q", header, 40, flags | 0x11)
    return bytes(header) + padded


def _container(*entries: bytes) -> bytes:
    body = b"".join(entries)
    return struct.pack("<IHHQ", CONTAINER_MAGIC, 1, 16, len(body)) + body


def _elf(sections: dict[str, bytes]) -> bytes:
    """A minimal ELF64 (AArch64, little endian) holding ``sections`` as PROGBITS."""
    names = b"\0" + b"".join(name.encode() + b"\0" for name in [*sections, ".shstrtab"])
    blobs = [*sections.values(), names]
    offset, layout = 64, []
    for blob in blobs:
        layout.append((offset, len(blob)))
        offset += len(blob) + (-len(blob) % 8)
    shoff = offset
    header = b"\x7fELF\x02\x01\x01" + b"\0" * 9
    header += struct.pack(
        "<HHIQQQIHHHHHH", 3, 183, 1, 0, 0, shoff, 0, 64, 0, 0, 64, len(blobs) + 1, len(blobs)
    )
    body = b"".join(blob + b"\0" * (-len(blob) % 8) for blob in blobs)
    table = b"\0" * 64
    name_at = 1
    for index, ((start, size), name) in enumerate(
        zip(layout, [*sections, ".shstrtab"], strict=True)
    ):
        kind = 3 if index == len(blobs) - 1 else 1
        table += struct.pack("<IIQQQQIIQQ", name_at, kind, 0, 0, start, size, 0, 0, 8, 0)
        name_at += len(name) + 1
    return header + body + table


def test_cubins_and_ptx_with_their_variants_are_read() -> None:
    fatbin = (
        _container(
            _entry(2, 110, FAMILY_SPECIFIC),
            _entry(2, 100, ARCH_SPECIFIC),
            _entry(1, 87),
            _entry(16, 90),
        )
        + b"\0" * 8
        + _container(_entry(2, 121, ARCH_SPECIFIC))
    )  # padding between containers
    images = kernel_images(_elf({".text": b"\0" * 16, ".nv_fatbin": fatbin}))
    assert sorted(image.name for image in images) == [
        "compute_87", "sm_100a", "sm_110f", "sm_121a", "sm_90",
    ]  # fmt: skip


def test_a_library_without_device_code_has_none() -> None:
    assert kernel_images(_elf({".text": b"\0" * 16})) == frozenset()
    assert kernel_images(b"not an ELF file") == frozenset()


def test_a_damaged_container_is_read_up_to_the_damage() -> None:
    damaged = bytearray(_container(_entry(2, 87), _entry(2, 90)))
    struct.pack_into("<I", damaged, 16 + 80 + 4, 0)  # the second entry's header size
    assert {i.name for i in kernel_images(_elf({".nv_fatbin": bytes(damaged)}))} == {"sm_87"}


@pytest.mark.parametrize(
    ("image", "device", "runs"),
    [
        (KernelImage(sm=80, variant="", kind="cubin"), 87, True),  # same major, newer minor
        (KernelImage(sm=89, variant="", kind="cubin"), 87, False),  # newer minor
        (KernelImage(sm=87, variant="", kind="cubin"), 90, False),  # never across majors
        (KernelImage(sm=90, variant="a", kind="cubin"), 90, True),
        (KernelImage(sm=100, variant="a", kind="cubin"), 103, False),  # a: only its own
        (KernelImage(sm=100, variant="f", kind="cubin"), 103, True),  # f: its family
        (KernelImage(sm=120, variant="f", kind="cubin"), 110, False),
        (KernelImage(sm=87, variant="", kind="ptx"), 110, True),  # PTX: JIT for newer
        (KernelImage(sm=120, variant="", kind="ptx"), 110, False),
        (KernelImage(sm=90, variant="a", kind="ptx"), 100, False),
    ],
)
def test_cudas_compatibility_rules(image: KernelImage, device: int, runs: bool) -> None:
    assert image.runs_on(device) is runs


def test_pypis_onnxruntime_cubins_cover_neither_orin_nor_thor() -> None:
    images = frozenset(
        KernelImage(sm=sm, variant=variant, kind="cubin")  # type: ignore[arg-type]
        for sm, variant in ((89, ""), (90, "a"), (120, "a"), (121, "a"))
    )
    assert uncovered(images, ("87",)) == ["87"]
    assert uncovered(images, ("110",)) == ["110"]
    assert uncovered(images, ("89", "90")) == []
    assert describe(images) == "cubins for sm_89, sm_90a, sm_120a, sm_121a and no PTX"
    with_ptx = images | {KernelImage(sm=87, variant="", kind="ptx")}
    assert uncovered(with_ptx, ("87", "110")) == []
