"""Assembling a CUDA stack from registry packages: placing, linking, checking, fetching."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from farm.cudastack import (
    Mirrors,
    add_unversioned_links,
    check_toolkit,
    destination,
    fetch,
    lay_out,
    nvcc_profile,
)
from farm.errors import EXIT_ENVIRONMENT, EXIT_USAGE, EnvironmentProblem, StackError
from farm.models import CudaStack, StackPackage

TARGET = "targets/sbsa-linux"


def _deb_bytes(files: dict[str, bytes], links: dict[str, str]) -> bytes:
    """A minimal Debian package: ar(5) with debian-binary, control.tar.xz, data.tar.xz."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size, info.mode = len(content), 0o755
            tar.addfile(info, io.BytesIO(content))
        for name, target in links.items():
            info = tarfile.TarInfo(f"./{name}")
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    members = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.xz", b""),
        ("data.tar.xz", data.getvalue()),
    ]
    out = bytearray(b"!<arch>\n")
    for name, content in members:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(content):<10}`\n"
        out += header.encode() + content + (b"\n" if len(content) % 2 else b"")
    return bytes(out)


def _wheel_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        for name, content in files.items():
            wheel.writestr(name, content)
    return buffer.getvalue()


def _package(
    registry: str, name: str, version: str, content: bytes, place: dict[str, str]
) -> StackPackage:
    file = (
        f"pool/non-free/x/{name}/{name}_{version}_arm64.deb"
        if registry == "debian"
        else f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    )
    return StackPackage(
        registry=registry,  # type: ignore[arg-type]
        name=name,
        version=version,
        file=file,
        sha256=hashlib.sha256(content).hexdigest(),
        place=place,
    )


def _cached(package: StackPackage, content: bytes, cache: Path) -> None:
    path = cache / "downloads" / package.sha256 / package.file_name
    path.parent.mkdir(parents=True)
    path.write_bytes(content)


def test_the_longest_matching_place_decides_and_target_is_expanded() -> None:
    package = _package(
        "debian",
        "nvidia-cuda-toolkit",
        "12.4.131~12.4.1-2",
        b"",
        {
            "usr/bin/": "bin/",
            "usr/bin/nvcc": "bin/nvcc-wrapper",
            "usr/include/": "{target}/include/",
        },
    )
    assert destination(package, "usr/bin/ptxas", TARGET) == "bin/ptxas"
    assert destination(package, "usr/bin/nvcc", TARGET) == "bin/nvcc-wrapper"
    assert destination(package, "usr/include/crt/host_config.h", TARGET) == (
        "targets/sbsa-linux/include/crt/host_config.h"
    )
    assert destination(package, "usr/share/doc/copyright", TARGET) is None


def test_a_member_that_climbs_out_of_the_toolkit_is_refused() -> None:
    package = _package("pypi", "nvidia-cuda-runtime", "13.0.88", b"", {"nvidia/": "lib/"})
    with pytest.raises(StackError, match="outside the toolkit"):
        destination(package, "nvidia/../../../etc/passwd", TARGET)


def test_a_place_with_dot_dot_is_a_catalog_error() -> None:
    with pytest.raises(ValueError, match="relative path"):
        _package("pypi", "nvidia-cuda-runtime", "13.0.88", b"", {"nvidia/": "../lib/"})


def test_unversioned_links_point_at_the_shortest_versioned_name(tmp_path: Path) -> None:
    (tmp_path / "libcudart.so.12.4.127").write_bytes(b"x")
    (tmp_path / "libcudart.so.12").symlink_to("libcudart.so.12.4.127")
    (tmp_path / "libcudnn.so.9").write_bytes(b"x")
    (tmp_path / "libcublas.so.12").write_bytes(b"x")
    (tmp_path / "libcublas.so").symlink_to("libcublas.so.12")
    assert add_unversioned_links(tmp_path) == ["libcudart.so", "libcudnn.so"]
    assert str(Path.readlink(tmp_path / "libcudart.so")) == "libcudart.so.12"
    assert str(Path.readlink(tmp_path / "libcudnn.so")) == "libcudnn.so.9"


def _toolkit_packages(
    release_of_static: str, header_version: int
) -> list[tuple[StackPackage, bytes]]:
    header = f"#define CUDART_VERSION {header_version}\n".encode()
    host = _deb_bytes(
        {
            "usr/lib/nvidia-cuda-toolkit/bin/nvcc": b"not run in unit tests",
            "usr/lib/nvidia-cuda-toolkit/bin/cicc": b"",
            "usr/lib/nvidia-cuda-toolkit/libdevice/libdevice.10.bc": b"",
        },
        {"usr/lib/nvidia-cuda-toolkit/bin/nvcc.profile": "/etc/nvcc.profile"},
    )
    target = _wheel_bytes(
        {
            "nvidia/cuda_runtime/include/cuda_runtime_api.h": header,
            "nvidia/cuda_runtime/lib/libcudart.so.12": b"",
            "nvidia/cuda_runtime/lib/libcudart_static.a": b"",
            "nvidia/cuda_runtime/lib/libcudadevrt.a": b"",
        }
    )
    return [
        (
            _package(
                "debian",
                "nvidia-cuda-toolkit",
                "12.4.131~12.4.1-2",
                host,
                {
                    "usr/lib/nvidia-cuda-toolkit/bin/": "bin/",
                    "usr/lib/nvidia-cuda-toolkit/libdevice/": "nvvm/libdevice/",
                },
            ),
            host,
        ),
        (
            _package(
                "pypi",
                "nvidia-cuda-runtime-cu12",
                release_of_static,
                target,
                {
                    "nvidia/cuda_runtime/include/": "{target}/include/",
                    "nvidia/cuda_runtime/lib/": "{target}/lib/",
                },
            ),
            target,
        ),
    ]


def _assemble_into(
    tmp_path: Path, pairs: list[tuple[StackPackage, bytes]]
) -> tuple[CudaStack, Path, dict[str, StackPackage]]:
    cache, root = tmp_path / "cache", tmp_path / "toolkit"
    for package, content in pairs:
        _cached(package, content, cache)
    stack = CudaStack(name="cuda-test", release="12.4", packages=tuple(p for p, _ in pairs))
    providers = lay_out(stack, cache, root, lambda line: None)
    return stack, root, providers


def test_a_debian_package_and_a_wheel_make_nvidias_layout(tmp_path: Path) -> None:
    stack, root, providers = _assemble_into(tmp_path, _toolkit_packages("12.4.127", 12040))
    check_toolkit(stack, root, providers)
    assert (root / "bin" / "nvcc").read_bytes() == b"not run in unit tests"
    assert (root / "nvvm" / "libdevice" / "libdevice.10.bc").is_file()
    assert str(Path.readlink(root / TARGET / "lib" / "libcudart.so")) == "libcudart.so.12"
    # The package's absolute link into its own system layout is dropped; farm writes the profile.
    assert (root / "bin" / "nvcc.profile").read_text() == nvcc_profile(TARGET)
    assert str(Path.readlink(root / "targets" / "aarch64-linux")) == "sbsa-linux"
    assert providers[f"{TARGET}/lib/libcudadevrt.a"].name == "nvidia-cuda-runtime-cu12"


def test_static_parts_of_another_release_than_the_stack_are_refused(tmp_path: Path) -> None:
    stack, root, providers = _assemble_into(tmp_path, _toolkit_packages("12.9.79", 12040))
    with pytest.raises(StackError) as caught:
        check_toolkit(stack, root, providers)
    assert caught.value.exit_code == EXIT_USAGE
    assert "libcudart_static.a comes from nvidia-cuda-runtime-cu12 12.9.79" in caught.value.message


def test_headers_of_another_release_are_refused(tmp_path: Path) -> None:
    stack, root, providers = _assemble_into(tmp_path, _toolkit_packages("12.4.127", 12090))
    with pytest.raises(StackError, match=r"CUDART_VERSION\) says CUDA 12.9"):
        check_toolkit(stack, root, providers)


def test_a_missing_piece_is_named(tmp_path: Path) -> None:
    pairs = _toolkit_packages("12.4.127", 12040)
    stack, root, providers = _assemble_into(tmp_path, pairs[:1])
    with pytest.raises(StackError, match="no package provides the CUDA runtime headers"):
        check_toolkit(stack, root, providers)


class _Files(http.server.BaseHTTPRequestHandler):
    served: ClassVar[dict[str, bytes]] = {}
    mirrors: ClassVar[Mirrors] = Mirrors()

    def do_GET(self) -> None:
        body = self.served.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def mirror() -> Iterator[dict[str, bytes]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    _Files.served = {}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Files.mirrors = Mirrors(debian=f"http://127.0.0.1:{server.server_port}/debian")
    yield _Files.served
    server.shutdown()


def test_a_download_is_checked_against_its_pin(tmp_path: Path, mirror: dict[str, bytes]) -> None:
    package = _package(
        "debian", "libcudart12", "12.4.127~12.4.1-2", b"pinned bytes", {"usr/": "x/"}
    )
    mirror[f"/debian/{package.file}"] = b"other bytes"
    with pytest.raises(StackError) as caught:
        fetch(package, tmp_path, lambda line: None, _Files.mirrors)
    assert f"but {package.sha256} is pinned" in caught.value.message
    # Nothing half-fetched is left where a later run would take it as the package.
    assert not any(path.is_file() for path in (tmp_path / "downloads").rglob("*"))
    mirror[f"/debian/{package.file}"] = b"pinned bytes"
    fetched = fetch(package, tmp_path, lambda line: None, _Files.mirrors)
    assert fetched.read_bytes() == b"pinned bytes"


def test_a_package_the_mirror_lacks_is_a_host_problem(
    tmp_path: Path, mirror: dict[str, bytes]
) -> None:
    package = _package("debian", "libcudart12", "12.4.127~12.4.1-2", b"x", {"usr/": "x/"})
    with pytest.raises(EnvironmentProblem) as caught:
        fetch(package, tmp_path, lambda line: None, _Files.mirrors)
    assert caught.value.exit_code == EXIT_ENVIRONMENT
    assert "cannot fetch libcudart12 12.4.127~12.4.1-2" in caught.value.message
    assert "404" in caught.value.message
