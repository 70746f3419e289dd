"""PEP 427 build numbers for rebuilt wheels."""

from __future__ import annotations

import zipfile
from pathlib import Path

from farm.wheelfile import next_build_number, same_release, split_name, with_build_number
from tests.registries.wheels import make_wheel, sha256

NAME = "onnxruntime_gpu-1.23.2-cp310-cp310-manylinux_2_35_aarch64.whl"


def test_file_names_are_compared_without_their_build_number() -> None:
    assert split_name("onnxruntime_gpu-1.23.2-2-cp310-cp310-manylinux_2_35_aarch64.whl") == (
        "onnxruntime-gpu",
        "1.23.2",
        2,
        "cp310-cp310-manylinux_2_35_aarch64",
    )
    assert same_release(NAME, "onnxruntime_gpu-1.23.2-3-cp310-cp310-manylinux_2_35_aarch64.whl")
    assert not same_release(NAME, "onnxruntime_gpu-1.23.2-cp311-cp311-manylinux_2_35_aarch64.whl")
    assert not same_release(NAME, "onnxruntime_gpu-1.23.1-cp310-cp310-manylinux_2_35_aarch64.whl")


def test_the_next_build_number_is_one_above_the_highest() -> None:
    assert next_build_number(NAME, [NAME]) == 1
    renumbered = "onnxruntime_gpu-1.23.2-4-cp310-cp310-manylinux_2_35_aarch64.whl"
    other = "onnxruntime_gpu-1.23.2-9-cp311-cp311-manylinux_2_35_aarch64.whl"
    assert next_build_number(NAME, [NAME, renumbered, other]) == 5


def test_a_renumbered_wheel_says_so_inside_and_is_reproducible(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "dist", "farm-demo", "0.1.0", payload=b"p" * 5000)
    first = with_build_number(wheel, 2, tmp_path / "a")
    again = with_build_number(wheel, 2, tmp_path / "b")
    assert first.name == "farm_demo-0.1.0-2-py3-none-any.whl"
    assert sha256(first) == sha256(again)
    with zipfile.ZipFile(first) as archive:
        meta = archive.read("farm_demo-0.1.0.dist-info/WHEEL").decode()
        record = archive.read("farm_demo-0.1.0.dist-info/RECORD").decode()
        assert archive.read("farm_demo/payload.bin") == b"p" * 5000
    assert meta.splitlines()[-1] == "Build: 2"
    import base64
    import hashlib

    digest = base64.urlsafe_b64encode(hashlib.sha256(meta.encode()).digest()).rstrip(b"=")
    assert f"farm_demo-0.1.0.dist-info/WHEEL,sha256={digest.decode()},{len(meta)}" in record
    # Renumbering a renumbered wheel replaces the number rather than adding one.
    third = with_build_number(first, 3, tmp_path / "c")
    assert third.name == "farm_demo-0.1.0-3-py3-none-any.whl"
    with zipfile.ZipFile(third) as archive:
        assert archive.read("farm_demo-0.1.0.dist-info/WHEEL").decode().count("Build:") == 1


def test_the_build_number_is_a_header_that_installers_read(tmp_path: Path) -> None:
    """auditwheel's WHEEL files end with a blank line, which ends the header block: a Build
    line after it would be body, unseen by pip (and by farm's own wheel check)."""
    from email.parser import Parser

    from farm.wheelcheck import verify_wheel
    from tests.registries.wheels import rewrite

    wheel = make_wheel(tmp_path / "dist", "farm-demo", "0.1.0", payload=b"p")
    text = b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n\n"
    # make_wheel's RECORD then differs for WHEEL: renumbering rewrites RECORD anyway.
    rewrite(wheel, {"farm_demo-0.1.0.dist-info/WHEEL": text})
    renumbered = with_build_number(wheel, 1, tmp_path / "a")
    with zipfile.ZipFile(renumbered) as archive:
        meta = archive.read("farm_demo-0.1.0.dist-info/WHEEL").decode()
    assert Parser().parsestr(meta)["Build"] == "1"
    assert verify_wheel(renumbered) == []
