"""Compatibility report of any wheel against a target: ours, PyPI's or anyone's.

It reads the wheel's tags and every ELF file in it (machine, DT_NEEDED, the
glibc symbol versions it binds to) and compares them with the target:

* the file itself (:mod:`farm.wheelcheck`): a sound zip whose RECORD matches
  its bytes, no unsafe paths, ELF code of the tag's architecture;
* architecture of the tags and of the ELF files,
* manylinux tag (PEP 600; legacy aliases from PEP 513/571/599) against the
  target's glibc; for plain ``linux_<arch>`` wheels the newest ``GLIBC_x.y``
  symbol version stands in for the tag,
* Python tag against the target's Python,
* each needed library: inside the wheel (grafted), on the target's provided
  list (CUDA, cuDNN, TensorRT on Jetson), or in the manylinux base set; a CUDA,
  cuDNN or TensorRT soname of another major version is named as such,
* which onnxruntime execution-provider libraries the wheel contains,
* CUDA kernel coverage: each library's fat binary must hold a cubin or PTX that
  every SM architecture of the target can run (:mod:`farm.cudakernels`).
"""

from __future__ import annotations

import fnmatch
import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import Version

from farm.cudakernels import KernelImage, describe, kernel_images, uncovered
from farm.errors import UsageError
from farm.models import Target
from farm.provenance import PROVENANCE_FILE, read_provenance
from farm.schemas import SCHEMA_VERSIONS
from farm.wheelcheck import WheelProblem, platform_arch, verify_wheel

REPORT_SCHEMA_VERSION = SCHEMA_VERSIONS["inspect"]
# Integrity rules after which the wheel's contents cannot be read.
UNREADABLE = frozenset(
    {"unreadable", "not a zip", "corrupt member", "unsafe path", "duplicate entry"}
)
ELF_MACHINE = {"EM_AARCH64": "aarch64", "EM_X86_64": "x86_64"}
# PEP 513/571/599 names and the glibc they stand for (PEP 600).
LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
# Libraries every manylinux platform provides (auditwheel's policy "lib_whitelist", PEP 599).
MANYLINUX_BASE = frozenset(
    {
        "libgcc_s.so.1",
        "libstdc++.so.6",
        "libm.so.6",
        "libdl.so.2",
        "librt.so.1",
        "libc.so.6",
        "libnsl.so.1",
        "libutil.so.1",
        "libpthread.so.0",
        "libresolv.so.2",
        "libX11.so.6",
        "libXext.so.6",
        "libXrender.so.1",
        "libICE.so.6",
        "libSM.so.6",
        "libGL.so.1",
        "libgobject-2.0.so.0",
        "libgthread-2.0.so.0",
        "libglib-2.0.so.0",
        "libz.so.1",
        "libexpat.so.1",
        "ld-linux-aarch64.so.1",
        "ld-linux-x86-64.so.2",
    }
)
# Soname families of the NVIDIA stack, and which target component's major version they carry.
GPU_FAMILIES = (
    (re.compile(r"^libcuda\.so\.(\d+)$"), "driver"),
    (re.compile(r"^lib(cudart|cublas|cublasLt|nvrtc|nvJitLink)\.so\.(\d+)"), "cuda"),
    (re.compile(r"^lib(cufft|curand|cusparse|cusolver|nvToolsExt)\.so\.(\d+)"), "cuda"),
    (re.compile(r"^libcudnn[a-z_]*\.so\.(\d+)"), "cudnn"),
    (re.compile(r"^lib(nvinfer[a-z_]*|nvonnxparser|nvparsers)\.so\.(\d+)"), "tensorrt"),
)
_PROVIDER_LIB = re.compile(r"libonnxruntime_providers_([a-z0-9_]+)\.so$")
PROVIDER_NAMES = {
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "dnnl": "DnnlExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
}


@dataclass(frozen=True, kw_only=True)
class ElfLibrary:
    path: str
    machine: str
    needed: tuple[str, ...]
    glibc: str | None  # newest GLIBC_x.y it binds to
    kernels: frozenset[KernelImage] = frozenset()  # CUDA device code in its fat binary


@dataclass(kw_only=True)
class WheelReport:
    wheel: str
    target: str
    name: str
    version: str
    tags: list[str]
    libraries: list[ElfLibrary]
    providers: list[str]
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    integrity: list[WheelProblem] = field(default_factory=list)  # also among the problems
    provenance: dict[str, Any] | None = None  # farm's record of what made it, if it has one

    @property
    def compatible(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": REPORT_SCHEMA_VERSION,
            "wheel": self.wheel,
            "target": self.target,
            "name": self.name,
            "version": self.version,
            "compatible": self.compatible,
            "problems": self.problems,
            "integrity": [problem.to_json() for problem in self.integrity],
            "notes": self.notes,
            "tags": self.tags,
            "providers": self.providers,
            "provenance": self.provenance,
            "libraries": [
                {
                    "path": lib.path,
                    "machine": lib.machine,
                    "needed": list(lib.needed),
                    "glibc": lib.glibc,
                    "kernels": [image.name for image in sorted(lib.kernels)],
                }
                for lib in self.libraries
            ],
        }


def inspect_wheel(
    path: Path, target: Target, expect_providers: tuple[str, ...] = ()
) -> WheelReport:
    try:
        name, version, _, tags = parse_wheel_filename(path.name)
    except InvalidWheelFilename as exc:
        raise UsageError(f"{path}: not a wheel file name ({exc})") from None
    integrity = verify_wheel(path)
    report = WheelReport(
        wheel=path.name,
        target=target.name,
        name=str(name),
        version=str(version),
        tags=sorted(str(tag) for tag in tags),
        libraries=[],
        providers=[],
        problems=[str(problem) for problem in integrity],
        integrity=integrity,
    )
    if any(problem.rule in UNREADABLE for problem in integrity):
        return report  # its contents cannot be judged
    with zipfile.ZipFile(path) as archive:
        members = archive.namelist()
        report.libraries = [lib for member in members if (lib := _elf(archive, member))]
    report.providers = _providers(members)
    _read_provenance(report, path)
    _check_arch(report, tags, target)
    _check_python(report, tags, target)
    _check_glibc(report, tags, target)
    _check_libraries(report, {Path(m).name for m in members}, target)
    _check_kernels(report, target)
    for provider in expect_providers:
        if provider != "CPUExecutionProvider" and provider not in report.providers:
            report.problems.append(
                f"no {provider} library in the wheel (target {target.name} expects it)"
            )
    return report


def _read_provenance(report: WheelReport, path: Path) -> None:
    try:
        report.provenance = read_provenance(path)
    except (ValueError, UsageError) as exc:
        report.notes.append(f"its {PROVENANCE_FILE} cannot be read: {exc}")
        return
    if report.provenance is None:
        report.notes.append("no farm provenance: not built by farm, or by an older farm")


def _elf(archive: zipfile.ZipFile, member: str) -> ElfLibrary | None:
    if member.endswith("/") or ".so" not in Path(member).name:
        return None
    data = archive.read(member)
    if data[:4] != b"\x7fELF":
        return None
    try:
        elf = ELFFile(io.BytesIO(data))
        needed: list[str] = []
        glibc: list[Version] = []
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection):
                needed += [
                    str(getattr(tag, "needed", ""))
                    for tag in section.iter_tags()
                    if tag.entry.d_tag == "DT_NEEDED"
                ]
            elif isinstance(section, GNUVerNeedSection):
                for _, auxiliaries in section.iter_versions():
                    glibc += [
                        Version(aux.name[6:])
                        for aux in auxiliaries
                        if re.fullmatch(r"GLIBC_\d+(\.\d+)+", aux.name)
                    ]
        machine = ELF_MACHINE.get(elf["e_machine"], str(elf["e_machine"]))
    except ELFError as exc:
        raise UsageError(f"{member}: unreadable ELF file ({exc})") from None
    return ElfLibrary(
        path=member,
        machine=machine,
        needed=tuple(needed),
        glibc=str(max(glibc)) if glibc else None,
        kernels=kernel_images(data),
    )


def _providers(members: list[str]) -> list[str]:
    found = [match[1] for m in members if (match := _PROVIDER_LIB.search(m))]
    return sorted(PROVIDER_NAMES.get(kind, kind) for kind in found if kind != "shared")


def _check_arch(report: WheelReport, tags: frozenset[Any], target: Target) -> None:
    arches = {platform_arch(tag.platform) for tag in tags} - {None}
    if arches and target.arch not in arches:
        report.problems.append(
            f"wheel is for {', '.join(sorted(a for a in arches if a))}, "
            f"target {target.name} is {target.arch}"
        )
    for lib in report.libraries:
        if lib.machine != target.arch:
            report.problems.append(f"{lib.path} is {lib.machine} code, target is {target.arch}")


def _check_python(report: WheelReport, tags: frozenset[Any], target: Target) -> None:
    wanted = [Version(py) for py in target.python]
    for tag in tags:
        interpreter = tag.interpreter
        match = re.fullmatch(r"(cp|py)(\d)(\d*)", interpreter)
        if not match or not match[3]:
            return  # py3 / py2.py3: any Python
        version = Version(f"{match[2]}.{match[3]}")
        if any(py == version or (tag.abi == "abi3" and py >= version) for py in wanted):
            return
    pythons = ", ".join(sorted({t.interpreter for t in tags}))
    report.problems.append(
        f"wheel is for {pythons}, target {target.name} has python {', '.join(target.python)}"
    )


def _check_glibc(report: WheelReport, tags: frozenset[Any], target: Target) -> None:
    have = Version(target.os.glibc)
    needs: list[tuple[int, int]] = []
    for tag in tags:
        platform = tag.platform
        legacy = platform.split("_")[0]
        if legacy in LEGACY_MANYLINUX:
            needs.append(LEGACY_MANYLINUX[legacy])
        elif match := re.match(r"manylinux_(\d+)_(\d+)_", platform):
            needs.append((int(match[1]), int(match[2])))
    if needs:
        lowest = min(needs)
        if Version(f"{lowest[0]}.{lowest[1]}") > have:
            report.problems.append(
                f"wheel is tagged manylinux_{lowest[0]}_{lowest[1]}, target "
                f"{target.name} has glibc {target.os.glibc}"
            )
        return
    report.notes.append("not a manylinux wheel: its glibc need is read from the symbol versions")
    newest = max((Version(lib.glibc) for lib in report.libraries if lib.glibc), default=None)
    if newest is not None and newest > have:
        report.problems.append(
            f"its libraries need glibc {newest}, target {target.name} has glibc {target.os.glibc}"
        )


def _check_kernels(report: WheelReport, target: Target) -> None:
    """Every CUDA library must carry device code the target's GPUs can run: else each kernel
    launch fails with cudaErrorNoKernelImageForDevice."""
    if target.cuda is None:
        return
    for lib in report.libraries:
        if not lib.kernels:
            continue
        missing = uncovered(lib.kernels, target.cuda.architectures)
        if missing:
            sms = ", ".join(f"sm_{arch}" for arch in missing)
            report.problems.append(
                f"{Path(lib.path).name} has no kernel image for {sms} of target {target.name} "
                f"({describe(lib.kernels)}): its kernels fail with "
                "cudaErrorNoKernelImageForDevice there"
            )


def _check_libraries(report: WheelReport, inside: set[str], target: Target) -> None:
    for lib in report.libraries:
        for soname in lib.needed:
            if soname in inside or soname in MANYLINUX_BASE:
                continue
            if any(fnmatch.fnmatchcase(soname, glob) for glob in target.provided_libs):
                continue
            report.problems.append(
                f"{Path(lib.path).name} needs {soname}: " + _missing_reason(soname, target)
            )


def _missing_reason(soname: str, target: Target) -> str:
    for pattern, component in GPU_FAMILIES:
        match = pattern.match(soname)
        if not match:
            continue
        major = match.groups()[-1]
        have = target.component_version(component) if component != "driver" else None
        if component == "driver" or have is None:
            return f"target {target.name} has no {component.upper()} stack"
        label = {"cuda": "CUDA", "cudnn": "cuDNN", "tensorrt": "TensorRT"}[component]
        if component == "cuda" and soname.startswith(
            ("libcudart", "libcublas", "libnvrtc", "libnvJitLink")
        ):
            return f"built for {label} {major}, but target {target.name} provides {label} {have}"
        return f"target {target.name} provides {label} {have}, which has no {soname}"
    return f"neither the wheel nor target {target.name} provides it (repair would graft it)"
