"""The deterministic wheel normal form: same files, same bytes."""

from __future__ import annotations

import zipfile
from pathlib import Path

from farm.wheelfile import with_build_number
from farm.wheelzip import content_digest, date_time, record_digest, rewrite_wheel, wheel_differences
from tests.registries.wheels import sha256

INFO = "pkg-1.0.dist-info"
FILES = {
    "pkg/__init__.py": b"",
    "pkg/_ext.so": b"\x7fELF fake",
    f"{INFO}/METADATA": b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n",
    f"{INFO}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp311-cp311-any\n",
    f"{INFO}/RECORD": b"stale\n",
    "pkg/data.txt": b"data",
}
PROVENANCE = b"{}\n"
BUILD_LINE = b"Build: 3\n"


def _wheel(path: Path, order: list[str], when: tuple[int, ...], modes: dict[str, int]) -> Path:
    """A messy wheel: entries in ``order``, timestamp ``when``, directory entries, odd modes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(zipfile.ZipInfo("pkg/", date_time=when), b"")  # type: ignore[arg-type]
        for name in order:
            info = zipfile.ZipInfo(name, date_time=when)  # type: ignore[arg-type]
            info.external_attr = modes.get(name, 0o100664) << 16
            archive.writestr(info, FILES[name])
    return path


def test_the_same_files_written_differently_give_the_same_bytes(tmp_path: Path) -> None:
    names = list(FILES)
    first = _wheel(tmp_path / "a" / "pkg.whl", names, (2026, 11, 25, 20, 15, 8), {})
    second = _wheel(
        tmp_path / "b" / "pkg.whl",
        list(reversed(names)),
        (2026, 11, 25, 20, 17, 0),
        {"pkg/_ext.so": 0o100775, "pkg/data.txt": 0o100600},
    )
    assert sha256(first) != sha256(second)
    stamp = date_time(1_700_000_000)
    one = rewrite_wheel(first, tmp_path / "one.whl", stamp=stamp)
    two = rewrite_wheel(second, tmp_path / "two.whl", stamp=stamp)
    assert sha256(one) != sha256(two)  # the .so is executable in one of them only
    assert wheel_differences(one, two) == ["pkg/_ext.so: executable in one wheel only"]
    third = _wheel(
        tmp_path / "c" / "pkg.whl", names, (2001, 1, 1, 0, 0, 0), {"pkg/_ext.so": 0o100700}
    )
    assert sha256(rewrite_wheel(third, tmp_path / "three.whl", stamp=stamp)) == sha256(two)


def test_the_normal_form_orders_stamps_and_records_every_file(tmp_path: Path) -> None:
    source = _wheel(tmp_path / "in.whl", list(FILES), (2026, 1, 1, 0, 0, 0), {})
    out = rewrite_wheel(
        source,
        tmp_path / "out.whl",
        replace={f"{INFO}/sboms/farm.provenance.json": PROVENANCE},
        stamp=date_time(0),
    )
    with zipfile.ZipFile(out) as archive:
        infos = archive.infolist()
        record = archive.read(f"{INFO}/RECORD").decode()
    assert [info.filename for info in infos] == [
        "pkg/__init__.py",
        "pkg/_ext.so",
        "pkg/data.txt",
        f"{INFO}/METADATA",
        f"{INFO}/WHEEL",
        f"{INFO}/sboms/farm.provenance.json",
        f"{INFO}/RECORD",
    ]
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}  # clamped
    assert {info.external_attr >> 16 for info in infos} == {0o100644}
    provenance_line = f"{INFO}/sboms/farm.provenance.json,{record_digest(PROVENANCE)},3"
    assert provenance_line in record
    assert f"pkg/data.txt,{record_digest(b'data')},4" in record
    assert record.endswith(f"{INFO}/RECORD,,\n")


def test_a_renumbered_copy_keeps_the_timestamp_and_the_content_digest(tmp_path: Path) -> None:
    source = _wheel(
        tmp_path / "pkg-1.0-cp311-cp311-linux_aarch64.whl", list(FILES), (2026, 1, 1, 0, 0, 0), {}
    )
    normal = rewrite_wheel(source, tmp_path / "n" / source.name, stamp=date_time(1_700_000_000))
    renumbered = with_build_number(normal, 3, tmp_path / "r")
    with zipfile.ZipFile(renumbered) as archive:
        assert {info.date_time for info in archive.infolist()} == {date_time(1_700_000_000)}
    assert content_digest(renumbered) == content_digest(normal)
    assert content_digest(source) == content_digest(normal)  # the files, not the archive
    size = len(FILES[f"{INFO}/WHEEL"])
    assert wheel_differences(normal, renumbered) == [
        f"{INFO}/WHEEL: contents differ ({size:,} and {size + len(BUILD_LINE):,} bytes)"
    ]


def test_equal_files_with_other_timestamps_are_named(tmp_path: Path) -> None:
    source = _wheel(tmp_path / "in.whl", list(FILES), (2026, 1, 1, 0, 0, 0), {})
    a = rewrite_wheel(source, tmp_path / "a.whl", stamp=date_time(1_700_000_000))
    b = rewrite_wheel(source, tmp_path / "b.whl", stamp=date_time(1_800_000_000))
    differences = wheel_differences(a, b)
    assert len(differences) == len(FILES)
    assert all("timestamp" in line for line in differences)
    assert wheel_differences(a, rewrite_wheel(a, tmp_path / "again.whl")) == []
