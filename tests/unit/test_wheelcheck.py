"""The checks of a wheel's bytes that `farm publish` and `farm inspect` share."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from farm.wheelcheck import WheelProblem, verify_wheel
from tests.registries.wheels import EM_AARCH64, EM_X86_64, elf, make_wheel, rewrite

AARCH64 = "cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64"
INFO = "farm_probe-1.0.dist-info"


def _rules(path: Path) -> list[str]:
    return [problem.rule for problem in verify_wheel(path)]


def test_a_sound_wheel_has_no_problem(tmp_path: Path) -> None:
    assert verify_wheel(make_wheel(tmp_path, payload=b"x")) == []
    native = make_wheel(tmp_path, tag=AARCH64, files={"farm_probe/_c.so": elf(EM_AARCH64)})
    assert verify_wheel(native) == []


def test_garbage_truncated_and_missing_files_are_named(tmp_path: Path) -> None:
    garbage = tmp_path / "farm_probe-1.0-py3-none-any.whl"
    garbage.write_bytes(b"not a zip at all")
    assert _rules(garbage) == ["not a zip"]
    whole = make_wheel(tmp_path / "t", payload=b"x" * 5000)
    whole.write_bytes(whole.read_bytes()[:-100])
    assert _rules(whole) == ["not a zip"]
    assert verify_wheel(tmp_path / "gone-1.0-py3-none-any.whl") == [
        WheelProblem("unreadable", "no such file")
    ]
    directory = tmp_path / "dir-1.0-py3-none-any.whl"
    directory.mkdir()
    assert verify_wheel(directory) == [WheelProblem("unreadable", "is a directory")]
    fifo = tmp_path / "fifo-1.0-py3-none-any.whl"
    os.mkfifo(fifo)
    assert verify_wheel(fifo) == [WheelProblem("unreadable", "is not a regular file")]
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    assert _rules(notes) == ["file name"]


def test_a_member_whose_bytes_fail_their_crc_is_corrupt(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, payload=b"P" * 64)
    data = wheel.read_bytes()
    wheel.write_bytes(data.replace(b"P" * 64, b"Q" * 64, 1))  # stored, not compressed
    assert verify_wheel(wheel)[0].rule == "corrupt member"


@pytest.mark.parametrize("name", ["../evil.py", "/etc/evil.py", "farm_probe/../../evil.py"])
def test_absolute_and_dotdot_members_are_unsafe(tmp_path: Path, name: str) -> None:
    wheel = rewrite(make_wheel(tmp_path), {name: b"x"})
    assert verify_wheel(wheel) == [
        WheelProblem("unsafe path", f"{name} would land outside the target")
    ]


def test_a_member_twice_is_refused(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path)
    with zipfile.ZipFile(wheel, "a") as archive, pytest.warns(UserWarning, match="Duplicate"):
        archive.writestr("farm_probe/__init__.py", b"other")
    assert "duplicate entry" in _rules(wheel)


def test_record_must_match_every_member(tmp_path: Path) -> None:
    tampered = rewrite(make_wheel(tmp_path / "a", payload=b"x"), {"farm_probe/payload.bin": b"y"})
    assert verify_wheel(tampered) == [
        WheelProblem("RECORD", "farm_probe/payload.bin: sha256 differs from RECORD")
    ]
    longer = rewrite(make_wheel(tmp_path / "b", payload=b"x"), {"farm_probe/payload.bin": b"yy"})
    assert verify_wheel(longer) == [
        WheelProblem("RECORD", "farm_probe/payload.bin is 2 bytes, RECORD says 1")
    ]
    smuggled = rewrite(make_wheel(tmp_path / "c"), {"farm_probe/extra.py": b"import os"})
    assert verify_wheel(smuggled) == [WheelProblem("RECORD", "farm_probe/extra.py is not listed")]
    dropped = rewrite(make_wheel(tmp_path / "d"), {"farm_probe/payload.bin": None})
    assert verify_wheel(dropped) == [
        WheelProblem("RECORD", "farm_probe/payload.bin is listed but not in the wheel")
    ]


def test_record_lines_need_a_strong_hash_and_a_size(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path)
    record = zipfile.ZipFile(wheel).read(f"{INFO}/RECORD").decode()
    weak = record.replace("farm_probe/__init__.py,sha256=", "farm_probe/__init__.py,md5=")
    rewrite(wheel, {f"{INFO}/RECORD": weak.encode()})
    assert verify_wheel(wheel) == [
        WheelProblem("RECORD", "line 1: farm_probe/__init__.py has no sha256 (or stronger) hash"),
        WheelProblem("RECORD", "farm_probe/__init__.py is not listed"),
    ]


def test_a_signature_of_record_needs_no_entry(tmp_path: Path) -> None:
    wheel = rewrite(make_wheel(tmp_path), {f"{INFO}/RECORD.jws": b"{}"})
    assert verify_wheel(wheel) == []


def test_the_dist_info_directory_must_be_there_and_whole(tmp_path: Path) -> None:
    bare = tmp_path / "farm_probe-1.0-py3-none-any.whl"
    with zipfile.ZipFile(bare, "w") as archive:
        archive.writestr("farm_probe/__init__.py", "")
    assert verify_wheel(bare) == [WheelProblem("dist-info", "0 .dist-info directories, not one")]
    no_meta = rewrite(make_wheel(tmp_path / "m"), {f"{INFO}/METADATA": None})
    assert verify_wheel(no_meta) == [WheelProblem("dist-info", f"{INFO} has no METADATA")]
    other = make_wheel(tmp_path / "o", "someone-else")
    renamed = other.rename(tmp_path / "o" / "farm_probe-1.0-py3-none-any.whl")
    assert verify_wheel(renamed) == [
        WheelProblem("dist-info", "someone_else-1.0.dist-info is not of project farm-probe")
    ]


def test_elf_code_must_be_of_the_tags_architecture(tmp_path: Path) -> None:
    x86 = make_wheel(tmp_path / "x", tag=AARCH64, files={"farm_probe/_c.so": elf(EM_X86_64)})
    assert verify_wheel(x86) == [
        WheelProblem("architecture", "farm_probe/_c.so is x86_64 code, the wheel is tagged aarch64")
    ]
    pure = make_wheel(tmp_path / "p", files={"farm_probe/tool": elf(EM_AARCH64)})
    assert verify_wheel(pure) == [
        WheelProblem(
            "architecture",
            "farm_probe/tool is aarch64 code, but the wheel is tagged for any platform",
        )
    ]
    mac = "cp311-cp311-macosx_11_0_arm64"
    unknown = make_wheel(tmp_path / "m", tag=mac, files={"farm_probe/_c.so": elf(EM_AARCH64)})
    assert verify_wheel(unknown) == []  # a platform without a verdict here, and no crash
