"""Whatever the cache holds is checked when it is used, not only when it was fetched: a
changed source archive, patch, CUDA package or Debian file is fetched again, and a changed
root filesystem or toolkit tarball is made again; nothing changed is trusted as pinned."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from farm.baseimage import _seal, _verified
from farm.cudastack import download_path, fetch_url
from farm.errors import StackError


def _mirror(tmp_path: Path, data: bytes) -> tuple[str, str]:
    source = tmp_path / "mirror" / "onnxruntime_1.21.0.orig.tar.xz"
    source.parent.mkdir()
    source.write_bytes(data)
    return source.as_uri(), hashlib.sha256(data).hexdigest()


def test_a_changed_cached_archive_is_fetched_again_and_said_so(tmp_path: Path) -> None:
    url, pin = _mirror(tmp_path, b"the pinned source")
    cached = download_path(tmp_path / "cache", pin, "onnxruntime_1.21.0.orig.tar.xz")
    said: list[str] = []
    assert fetch_url(url, pin, cached, "source", said.append) == cached
    cached.write_bytes(b"the pinned source, with a back door")
    fetch_url(url, pin, cached, "source", said.append)
    assert cached.read_bytes() == b"the pinned source"
    assert any(f"not the pinned {pin}: fetching it again" in line for line in said)


def test_a_mirror_serving_other_bytes_is_refused_naming_both_hashes(tmp_path: Path) -> None:
    url, pin = _mirror(tmp_path, b"the pinned source")
    (tmp_path / "mirror" / "onnxruntime_1.21.0.orig.tar.xz").write_bytes(b"other bytes")
    cached = download_path(tmp_path / "cache", pin, "onnxruntime_1.21.0.orig.tar.xz")
    other = hashlib.sha256(b"other bytes").hexdigest()
    with pytest.raises(StackError, match=f"has sha256 {other}, but {pin} is pinned"):
        fetch_url(url, pin, cached, "source", print)
    assert not cached.exists()


def test_a_changed_cached_layer_is_made_again(tmp_path: Path) -> None:
    tarball = tmp_path / "trixie-arm64-0123.tar"
    tarball.write_bytes(b"root filesystem")
    said: list[str] = []
    assert not _verified(tarball, said.append)  # no seal: made by an older farm, or by hand
    assert not tarball.exists() and "no record of its sha256" in said[-1]
    tarball.write_bytes(b"root filesystem")
    _seal(tarball)
    assert _verified(tarball, said.append)
    tarball.write_bytes(b"root filesystem with a rootkit")
    assert not _verified(tarball, said.append)
    assert not tarball.exists() and "making it again" in said[-1]
