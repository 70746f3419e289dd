"""CUDA stacks assembled from registry packages: fetched, verified and laid out as a toolkit.

A target whose CUDA does not come from an image (a stand-in for JetPack's CUDA
stack) names registry packages in ``cuda.stack``: Debian packages by pool path,
wheels by file name, each with its sha256. They are downloaded once into the
farm cache (``downloads/<sha256>/``), checked, and unpacked by each package's
``place`` map into NVIDIA's toolkit layout, the one nvcc and CMake's
FindCUDAToolkit expect of a cross toolkit (NVIDIA's cuda-cross-* packages lay
it out so): build-machine tools in ``bin/`` and ``nvvm/``, the target's headers
and libraries in ``targets/<dir>/``. Wheels and Debian packages hold only
``libX.so.N``; the unversioned ``libX.so`` links that a linker looks for are
added, and ``bin/nvcc.profile`` is written for this layout. The result is a
tarball keyed by the stack's content, loaded as an image the cross Dockerfile
copies from, as bootstrapped root filesystems are.

What the toolkit must hold is checked before it is cached: nvcc, cicc and
libdevice for the build machine; the runtime headers, ``libcudart.so`` and the
static runtime for the target; and one CUDA release throughout (nvcc's own
``--version``, ``CUDART_VERSION`` in the headers and the package versions of the
static parts, which nvlink refuses to mix).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from farm.digest import sha256_file
from farm.errors import EnvironmentProblem, RegistryError, StackError
from farm.models import CudaStack, StackPackage, StackPatch
from farm.process import capture
from farm.simpleindex import TransientFailure, download, project_files

DEBIAN_MIRROR_ENV = "FARM_DEBIAN_MIRROR"
PYPI_INDEX_ENV = "FARM_PYPI_INDEX"
DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEFAULT_PYPI_INDEX = "https://pypi.org/simple"
_SHARED_LIBRARY = re.compile(r"^(lib[^/]+?\.so)((\.\d+)+)$")
_CUDART_VERSION = re.compile(r"^#define\s+CUDART_VERSION\s+(\d+)", re.M)
_NVCC_RELEASE = re.compile(r"release (\d+\.\d+)")
# Pieces whose CUDA release must be nvcc's: nvlink refuses a newer device runtime, and
# CMake's compiler check links the static runtime.
_RELEASE_BOUND = ("bin/nvcc", "{target}/lib/libcudart_static.a", "{target}/lib/libcudadevrt.a")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Member:
    """One entry of a package archive: a file or a symbolic link.

    ``read`` gives a file's bytes; for a Debian package it must be called before
    the next member is taken (the data archive is read as a stream).
    """

    path: str
    mode: int
    read: Callable[[], bytes] = bytes
    link: str | None = None


@dataclass(frozen=True, kw_only=True)
class Mirrors:
    """Where pinned packages are downloaded from: a Debian mirror and a simple index."""

    debian: str = DEFAULT_DEBIAN_MIRROR
    pypi_index: str = DEFAULT_PYPI_INDEX

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Mirrors:
        return cls(
            debian=environ.get(DEBIAN_MIRROR_ENV) or DEFAULT_DEBIAN_MIRROR,
            pypi_index=environ.get(PYPI_INDEX_ENV)
            or environ.get("PIP_INDEX_URL")
            or DEFAULT_PYPI_INDEX,
        )

    def package_url(self, package: StackPackage) -> str:
        """Where a Debian package is downloaded from; wheels are looked up in the index."""
        return f"{self.debian.rstrip('/')}/{package.file}"


DEFAULT_MIRRORS = Mirrors()


def download_path(cache: Path, sha256: str, file_name: str) -> Path:
    """Where a pinned download lives in the cache: keyed by its sha256, under its own name."""
    return cache / "downloads" / sha256 / file_name


def downloaded_path(package: StackPackage, cache: Path) -> Path:
    return download_path(cache, package.sha256, package.file_name)


def in_toolkit(path: str, target_dir: str) -> str:
    """A stack path with ``{target}`` standing for the target tree (``targets/sbsa-linux``)."""
    return path.replace("{target}", target_dir)


def fetch(
    package: StackPackage, cache: Path, say: Progress, mirrors: Mirrors = DEFAULT_MIRRORS
) -> Path:
    """The package file in the download cache, downloaded and checked when missing."""
    final = downloaded_path(package, cache)
    if final.is_file():
        return final
    label = f"{package.name} {package.version}"
    return fetch_url(_resolve(package, mirrors), package.sha256, final, label, say)


def place_cached(fetched: Path, destination: Path) -> Path:
    """A cached file at ``destination`` (a build context): a hard link where the file
    system allows one, else a copy."""
    try:
        os.link(fetched, destination)
    except OSError:
        shutil.copyfile(fetched, destination)
    return destination


def fetch_url(url: str, sha256: str, final: Path, label: str, say: Progress) -> Path:
    """Download ``url`` to ``final`` unless it is there with the pinned bytes; refuse bytes
    other than pinned. A cached file is checked on every use: one that changed since it was
    fetched (a disk fault, a hand edit, tampering) is deleted, said so, and fetched again."""
    if final.is_file():
        found = sha256_file(final)
        if found == sha256:
            return final
        say(f"cached {final} has sha256 {found}, not the pinned {sha256}: fetching it again")
        final.unlink()
    final.parent.mkdir(parents=True, exist_ok=True)
    say(f"fetching {label} ({final.name})")
    partial = final.with_name(f".{final.name}.{os.getpid()}.partial")
    try:
        got = download(url, partial)
        if got != sha256:
            raise StackError(
                f"{label}: {final.name} has sha256 {got}, but {sha256} is pinned",
                hint="the registry serves other bytes than were pinned; check the pin",
            )
        partial.replace(final)
    except (TransientFailure, RegistryError) as exc:
        raise EnvironmentProblem(
            f"cannot fetch {label}: {exc}",
            hint=f"set {DEBIAN_MIRROR_ENV} or {PYPI_INDEX_ENV} to a reachable mirror",
        ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return final


def _resolve(package: StackPackage, mirrors: Mirrors) -> str:
    if package.registry == "debian":
        return mirrors.package_url(package)
    index = mirrors.pypi_index
    try:
        files = project_files(index, package.name, None)
    except (TransientFailure, RegistryError) as exc:
        raise EnvironmentProblem(f"cannot read the index for {package.name}: {exc}") from None
    found = files.get(package.file_name)
    if found is None:
        raise EnvironmentProblem(
            f"{package.name}: the index lists no file {package.file_name}",
            hint=f"set {PYPI_INDEX_ENV} to an index that serves it",
        )
    return found.url


# --- reading archives ------------------------------------------------------------


def members(package: StackPackage, archive: Path) -> Iterator[Member]:
    """Every file and link in a wheel or in a Debian package's data archive."""
    if package.registry == "pypi":
        yield from _wheel_members(archive)
    else:
        yield from _deb_members(archive)


def _wheel_members(archive: Path) -> Iterator[Member]:
    try:
        with zipfile.ZipFile(archive) as wheel:
            for info in wheel.infolist():
                if info.is_dir():
                    continue
                mode = (info.external_attr >> 16) & 0o777 or 0o644
                yield Member(
                    path=info.filename, mode=mode, read=functools.partial(wheel.read, info)
                )
    except zipfile.BadZipFile:
        raise StackError(f"{archive.name} is not a valid wheel (zip)") from None


def _deb_members(archive: Path) -> Iterator[Member]:
    with archive.open("rb") as handle:
        name, offset, size = _ar_data_member(handle, archive.name)
        handle.seek(offset)
        if name not in ("data.tar.xz", "data.tar.gz", "data.tar.bz2", "data.tar"):
            raise StackError(f"{archive.name}: {name} is not a compression farm can read")
        stream = io.BufferedReader(_Slice(handle, size), buffer_size=1 << 20)
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for info in tar:
                path = info.name.removeprefix("./")
                if info.issym():
                    yield Member(path=path, mode=0o777, link=info.linkname)
                elif info.isfile():
                    yield Member(path=path, mode=info.mode & 0o777, read=_reader(tar, info))


def _reader(tar: tarfile.TarFile, info: tarfile.TarInfo) -> Callable[[], bytes]:
    def read() -> bytes:
        extracted = tar.extractfile(info)
        return extracted.read() if extracted is not None else b""

    return read


def _ar_data_member(handle: io.BufferedReader, label: str) -> tuple[str, int, int]:
    """Name, offset and size of ``data.tar.*`` in an ar(5) archive (a .deb)."""
    if handle.read(8) != b"!<arch>\n":
        raise StackError(f"{label} is not a Debian package (no ar header)")
    while header := handle.read(60):
        if len(header) < 60:
            break
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip() or 0)
        offset = handle.tell()
        if name.startswith("data.tar"):
            return name, offset, size
        handle.seek(offset + size + (size % 2))
    raise StackError(f"{label} has no data.tar member")


class _Slice(io.RawIOBase):
    """``size`` bytes of an open file from its current position, read as a stream."""

    def __init__(self, handle: io.BufferedReader, size: int) -> None:
        self._handle = handle
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._left <= 0:
            return 0
        chunk = self._handle.read(min(len(buffer), self._left))
        buffer[: len(chunk)] = chunk
        self._left -= len(chunk)
        return len(chunk)


# --- laying out --------------------------------------------------------------------


def destination(package: StackPackage, path: str, target_dir: str) -> str | None:
    """Where ``path`` of the package goes below the toolkit home; None when not taken.

    The longest ``place`` key that is the path itself, or a directory (ending in
    ``/``) the path lies in, decides.
    """
    best: str | None = None
    for source in package.place:
        matches = path == source or (source.endswith("/") and path.startswith(source))
        if matches and (best is None or len(source) > len(best)):
            best = source
    if best is None:
        return None
    dest = in_toolkit(package.place[best], target_dir)
    rest = path[len(best) :]
    joined = f"{dest.rstrip('/')}/{rest}" if rest else dest
    normal = PurePosixPath(joined)
    if normal.is_absolute() or ".." in normal.parts:
        raise StackError(f"{package.name}: {path!r} would land outside the toolkit")
    return str(normal)


def unpack(package: StackPackage, archive: Path, root: Path, target_dir: str) -> list[str]:
    """Place the package's files below ``root``; the toolkit paths written, in order."""
    written: list[str] = []
    for member in members(package, archive):
        dest = destination(package, member.path, target_dir)
        if dest is None:
            continue
        path = root / dest
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()
        if member.link is not None:
            if member.link.startswith("/"):
                continue  # points into the package's own system layout, not the toolkit
            path.symlink_to(member.link)
        else:
            path.write_bytes(member.read())
            path.chmod(member.mode)
        written.append(dest)
    return written


def add_unversioned_links(lib: Path) -> list[str]:
    """``libX.so -> libX.so.N`` for every versioned library without its link."""
    made: list[str] = []
    if not lib.is_dir():
        return made
    versioned: dict[str, list[str]] = {}
    for entry in lib.iterdir():
        match = _SHARED_LIBRARY.match(entry.name)
        if match:
            versioned.setdefault(match[1], []).append(entry.name)
    for plain, names in sorted(versioned.items()):
        link = lib / plain
        if link.exists() or link.is_symlink():
            continue
        link.symlink_to(min(names, key=lambda name: (len(name), name)))
        made.append(plain)
    return made


def nvcc_profile(target_dir: str, include_first: tuple[str, ...] = ()) -> str:
    """nvcc's configuration for this layout: tools beside nvcc, the target tree for code.

    The target directory is written out, not ``$(_TARGET_DIR_)``: CMake asks nvcc for
    its include and library directories without the cross host compiler, and nvcc
    would then answer with the build machine's tree.
    """
    first = "".join(f'"-I$(TOP)/{path}" ' for path in include_first)
    return (
        "# Written by farm for an assembled cross toolkit (see nvcc's documentation,\n"
        "# 'nvcc.profile'): tools in bin/ and nvvm/, the target's tree in " + target_dir + ".\n"
        "TOP              = $(_HERE_)/..\n"
        "NVVMIR_LIBRARY_DIR = $(TOP)/nvvm/libdevice\n"
        "LD_LIBRARY_PATH += $(TOP)/nvvm/lib64:$(TOP)/lib:\n"
        "PATH            += $(TOP)/nvvm/bin:$(_HERE_):\n"
        f'INCLUDES        +=  {first}"-I$(TOP)/{target_dir}/include" $(_SPACE_)\n'
        f'LIBRARIES        =+ $(_SPACE_) "-L$(TOP)/{target_dir}/lib/stubs" '
        f'"-L$(TOP)/{target_dir}/lib"\n'
        "CUDAFE_FLAGS    +=\n"
        "PTXAS_FLAGS     +=\n"
    )


# --- assembling and checking -----------------------------------------------------------


def toolkit_tarball(stack: CudaStack, cache: Path) -> Path:
    return cache / "toolkits" / f"{stack.name}-{stack.key}.tar"


def assemble(
    stack: CudaStack, cache: Path, say: Progress, mirrors: Mirrors = DEFAULT_MIRRORS
) -> Path:
    """The stack's toolkit as a tarball in the cache, assembled and checked when missing."""
    tarball = toolkit_tarball(stack, cache)
    if tarball.is_file():
        return tarball
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{stack.name}-", dir=tarball.parent) as scratch:
        root = Path(scratch) / "toolkit"
        providers = lay_out(stack, cache, root, say, mirrors)
        check_toolkit(stack, root, providers)
        say(f"packing {tarball.name}")
        write_tarball(root, tarball)
    return tarball


def lay_out(
    stack: CudaStack, cache: Path, root: Path, say: Progress, mirrors: Mirrors = DEFAULT_MIRRORS
) -> dict[str, StackPackage]:
    """Unpack every package into ``root``; which package wrote each toolkit path."""
    providers: dict[str, StackPackage] = {}
    for package in stack.packages:
        archive = fetch(package, cache, say, mirrors)
        say(f"unpacking {package.name} {package.version}")
        for path in unpack(package, archive, root, stack.target_dir):
            providers[path] = package
    lib = root / stack.target_dir / "lib"
    linked = add_unversioned_links(lib)
    if linked:
        say(f"linked {', '.join(linked)}")
    (root / "bin").mkdir(parents=True, exist_ok=True)
    include_first = tuple(in_toolkit(path, stack.target_dir) for path in stack.include_first)
    profile = nvcc_profile(stack.target_dir, include_first)
    (root / "bin" / "nvcc.profile").write_text(profile, encoding="utf-8")
    # As NVIDIA's toolkits carry it; onnxruntime's build.py reads the CUDA release from it.
    version = {"cuda": {"name": "CUDA SDK", "version": stack.release}}
    (root / "version.json").write_text(json.dumps(version) + "\n", encoding="utf-8")
    for patch in stack.patches:
        apply_patch(stack, patch, root)
    # nvcc and CMake also look for the aarch64 tree under its Jetson name.
    alias = root / "targets" / "aarch64-linux"
    if stack.target_dir != "targets/aarch64-linux" and not alias.exists():
        alias.parent.mkdir(parents=True, exist_ok=True)
        alias.symlink_to(PurePosixPath(stack.target_dir).name)
    return providers


def apply_patch(stack: CudaStack, patch: StackPatch, root: Path) -> None:
    directory = root / in_toolkit(patch.directory, stack.target_dir)
    try:
        result = capture(
            ["patch", "-p1", "--forward", "--batch", "-d", str(directory), "-i", "/dev/stdin"],
            stdin=patch.diff,
        )
    except EnvironmentProblem:
        raise EnvironmentProblem(
            "patch is not installed", hint="apt-get install patch (scripts/host-setup.sh does)"
        ) from None
    if result.returncode != 0:
        raise StackError(
            f"CUDA stack {stack.name}: a patch ({patch.why}) does not apply in "
            f"{patch.directory}: {result.failing_line()}"
        )


def check_toolkit(stack: CudaStack, root: Path, providers: dict[str, StackPackage]) -> None:
    """Refuse a toolkit that lacks a piece, or whose pieces come from different releases."""
    target = stack.target_dir
    required = {
        "bin/nvcc": "nvcc",
        "nvvm/libdevice/libdevice.10.bc": "libdevice",
        f"{target}/include/cuda_runtime_api.h": "the CUDA runtime headers",
        f"{target}/lib/libcudart.so": "libcudart.so",
        f"{target}/lib/libcudart_static.a": "the static CUDA runtime",
    }
    if not any((root / where / "cicc").is_file() for where in ("bin", "nvvm/bin")):
        raise StackError(f"CUDA stack {stack.name}: no package provides cicc (bin/ or nvvm/bin/)")
    for path, piece in required.items():
        if not (root / path).exists():
            raise StackError(f"CUDA stack {stack.name}: no package provides {piece} ({path})")
    headers = (root / target / "include" / "cuda_runtime_api.h").read_text(errors="replace")
    _same_release(stack, "the runtime headers (CUDART_VERSION)", _header_release(headers))
    nvcc = nvcc_release(root / "bin" / "nvcc")
    if nvcc is not None:
        _same_release(stack, "nvcc --version", nvcc)
    for bound in _RELEASE_BOUND:
        package = providers.get(in_toolkit(bound, target))
        if package is not None and not _version_of_release(package.version, stack.release):
            raise StackError(
                f"CUDA stack {stack.name}: {PurePosixPath(bound).name} comes from "
                f"{package.name} {package.version}, but the stack is CUDA {stack.release}: "
                "nvcc and the static CUDA parts must be of one release"
            )


def _header_release(text: str) -> str | None:
    match = _CUDART_VERSION.search(text)
    if not match:
        return None
    number = int(match[1])
    return f"{number // 1000}.{number % 1000 // 10}"


def nvcc_release(nvcc: Path) -> str | None:
    """What nvcc says its release is; None where it cannot run here (another machine)."""
    try:
        result = capture([str(nvcc), "--version"], timeout=60)
    except EnvironmentProblem:
        return None
    match = _NVCC_RELEASE.search(result.output)
    return match[1] if result.returncode == 0 and match else None


def _same_release(stack: CudaStack, what: str, found: str | None) -> None:
    if found is not None and found != stack.release:
        raise StackError(
            f"CUDA stack {stack.name}: {what} says CUDA {found}, but the stack is "
            f"CUDA {stack.release}"
        )


def _version_of_release(version: str, release: str) -> bool:
    """Whether a package version belongs to a CUDA release (``12.4.127~12.4.1-2``, ``13.0.88``)."""
    return version == release or version.startswith(f"{release}.")


def write_tarball(root: Path, tarball: Path) -> None:
    """A tarball of ``root``'s contents, in sorted order with fixed owners and times."""
    partial = tarball.with_name(f".{tarball.name}.{os.getpid()}.partial")
    try:
        with tarfile.open(partial, "w", format=tarfile.GNU_FORMAT) as tar:
            for path in sorted(root.rglob("*")):
                info = tar.gettarinfo(str(path), arcname=str(path.relative_to(root)))
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mtime = 0
                if info.isfile():
                    with path.open("rb") as handle:
                        tar.addfile(info, handle)
                else:
                    tar.addfile(info)
        partial.replace(tarball)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


# --- what a stand-in target's image provides ------------------------------------------


def assemble_runtime(
    packages: tuple[StackPackage, ...],
    triplet: str,
    tarball: Path,
    cache: Path,
    say: Progress,
    mirrors: Mirrors = DEFAULT_MIRRORS,
) -> None:
    """The shared libraries of ``packages`` as a layer at ``/usr/lib/<triplet>/``.

    This is what a stand-in target's image provides of its CUDA stack, as
    JetPack's image provides CUDA and cuDNN in the same directory.
    """
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".runtime-", dir=tarball.parent) as scratch:
        staged, layer = Path(scratch) / "staged", Path(scratch) / "layer"
        libdir = layer / "usr" / "lib" / triplet
        libdir.mkdir(parents=True)
        for package in packages:
            archive = fetch(package, cache, say, mirrors)
            for path in unpack(package, archive, staged, "target"):
                name = PurePosixPath(path).name
                if _SHARED_LIBRARY.match(name) and not (libdir / name).exists():
                    shutil.copy2(staged / path, libdir / name, follow_symlinks=False)
        if not any(libdir.iterdir()):
            raise StackError("the runtime packages hold no shared library (libX.so.N)")
        write_tarball(layer, tarball)
