from __future__ import annotations

from pathlib import Path

import pytest

from farm import doctor
from farm.catalog import Catalog

ENTRY = """enabled
interpreter /usr/bin/qemu-aarch64-static
flags: OCF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
"""


@pytest.fixture
def binfmt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "status").write_text("enabled\n")
    monkeypatch.setattr(doctor, "BINFMT_DIR", tmp_path)
    monkeypatch.setattr(doctor, "host_platform", lambda: "linux/amd64")
    return tmp_path


def test_registered_enabled_entry_passes(binfmt: Path) -> None:
    (binfmt / "qemu-aarch64").write_text(ENTRY)
    check = doctor.check_binfmt("linux/arm64")
    assert check.status == "ok" and "flags OCF" in check.detail


def test_missing_entry_fails_with_the_fix(binfmt: Path) -> None:
    check = doctor.check_binfmt("linux/arm64")
    assert check.status == "fail"
    assert check.fix and "scripts/host-setup.sh" in check.fix


def test_disabled_entry_fix_is_the_exact_command(binfmt: Path) -> None:
    (binfmt / "qemu-aarch64").write_text(ENTRY.replace("enabled", "disabled"))
    check = doctor.check_binfmt("linux/arm64")
    assert check.status == "fail" and check.fix == f"echo 1 > {binfmt / 'qemu-aarch64'}"


def test_entry_without_f_flag_fails(binfmt: Path) -> None:
    (binfmt / "qemu-aarch64").write_text(ENTRY.replace("flags: OCF", "flags: OC"))
    assert doctor.check_binfmt("linux/arm64").status == "fail"


def test_unmounted_binfmt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "BINFMT_DIR", tmp_path / "absent")
    monkeypatch.setattr(doctor, "host_platform", lambda: "linux/amd64")
    check = doctor.check_binfmt("linux/arm64")
    assert check.status == "fail" and "mount -t binfmt_misc" in (check.fix or "")


@pytest.mark.parametrize(
    ("version", "status"), [("7.2.0", "fail"), ("9.1.0", "warn"), ("10.0.2", "ok")]
)
def test_qemu_versions(binfmt: Path, tmp_path: Path, version: str, status: str) -> None:
    fake = tmp_path / "qemu"
    fake.write_text(f"#!/bin/sh\necho 'qemu-aarch64 version {version} (Debian)'\n")
    fake.chmod(0o755)
    (binfmt / "qemu-aarch64").write_text(ENTRY.replace("/usr/bin/qemu-aarch64-static", str(fake)))
    check = doctor.check_qemu("linux/arm64")
    assert check.status == status
    if status == "fail":
        assert "crashes running onnxruntime" in check.detail
        assert "bookworm-backports" in (check.fix or "")


def test_native_platform_needs_no_emulation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "host_platform", lambda: "linux/arm64")
    assert doctor.check_binfmt("linux/arm64").status == "ok"
    assert doctor.check_qemu("linux/arm64").status == "ok"


def test_cuda_stacks_say_whether_they_are_assembled(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    targets = [entry.model for entry in catalog.targets.values()]
    checks = doctor.check_cuda_stacks(targets, tmp_path)
    # The two stand-ins, and JetPack 7 whose cross builds share standin-cuda13's stack.
    assert [c.status for c in checks] == ["ok", "ok", "ok"]
    assert all("not assembled yet" in c.detail for c in checks)
    stack = catalog.targets["standin-cuda13"].model.cuda.stack  # type: ignore[union-attr]
    assert stack is not None
    tarball = doctor.toolkit_tarball(stack, tmp_path)
    tarball.parent.mkdir(parents=True)
    tarball.write_bytes(b"x" * 1024)
    detail = next(c.detail for c in doctor.check_cuda_stacks(targets, tmp_path) if "13" in c.detail)
    assert "cuda-13.0-pypi (CUDA 13.0, 6 packages) assembled" in detail
    # The CUDA 12 stack carries a patch: without the patch program it cannot be assembled.
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    failing = [c for c in doctor.check_cuda_stacks(targets, tmp_path) if c.status == "fail"]
    assert len(failing) == 1 and "patch is not installed" in failing[0].detail
    assert failing[0].fix is not None and "apt-get install patch" in failing[0].fix
