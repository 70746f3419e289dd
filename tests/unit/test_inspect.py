"""The compatibility rules of ``farm inspect``, on wheel names and library lists.

The ELF reading itself is exercised on real aarch64 wheels in the integration
tests; here each rule is fed the tags and DT_NEEDED lists it decides on.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.tags import Tag
from packaging.utils import parse_wheel_filename

from farm.catalog import Catalog
from farm.errors import UsageError
from farm.inspect import (
    ElfLibrary,
    WheelReport,
    _check_arch,
    _check_glibc,
    _check_libraries,
    _check_python,
    _providers,
    inspect_wheel,
)
from farm.models import Target
from tests.registries.wheels import EM_X86_64, elf, make_wheel, rewrite


def _target(catalog: Catalog, name: str) -> Target:
    return catalog.targets[name].model


def _report(wheel: str, *libraries: ElfLibrary) -> tuple[WheelReport, frozenset[Tag]]:
    name, version, _, tags = parse_wheel_filename(wheel)
    report = WheelReport(
        wheel=wheel,
        target="t",
        name=str(name),
        version=str(version),
        tags=sorted(map(str, tags)),
        libraries=list(libraries),
        providers=[],
    )
    return report, tags


def _lib(*needed: str, machine: str = "aarch64", glibc: str | None = "2.17") -> ElfLibrary:
    return ElfLibrary(
        path="onnxruntime/capi/libonnxruntime_providers_cuda.so",
        machine=machine,
        needed=needed,
        glibc=glibc,
    )


JP6_WHEEL = "onnxruntime_gpu-1.23.2-cp310-cp310-manylinux_2_35_aarch64.whl"


def test_a_jetpack6_wheel_needing_cuda_12_and_tensorrt_10_is_compatible(
    catalog: Catalog,
) -> None:
    target = _target(catalog, "jetpack6")
    report, tags = _report(
        JP6_WHEEL, _lib("libcudart.so.12", "libnvinfer.so.10", "libcuda.so.1", "libstdc++.so.6")
    )
    for rule in (_check_arch, _check_python, _check_glibc):
        rule(report, tags, target)
    _check_libraries(report, set(), target)
    assert report.problems == []
    assert report.compatible


def test_cuda_13_libraries_are_named_as_a_cuda_major_mismatch(catalog: Catalog) -> None:
    report, _ = _report(JP6_WHEEL, _lib("libcudart.so.13", "libcublas.so.13"))
    _check_libraries(report, set(), _target(catalog, "jetpack6"))
    assert report.problems == [
        "libonnxruntime_providers_cuda.so needs libcudart.so.13: built for CUDA 13, "
        "but target jetpack6 provides CUDA 12.6",
        "libonnxruntime_providers_cuda.so needs libcublas.so.13: built for CUDA 13, "
        "but target jetpack6 provides CUDA 12.6",
    ]


def test_a_tensorrt_8_library_on_jetpack6_names_the_tensorrt_version(catalog: Catalog) -> None:
    report, _ = _report(JP6_WHEEL, _lib("libnvinfer.so.8"))
    _check_libraries(report, set(), _target(catalog, "jetpack6"))
    assert report.problems == [
        "libonnxruntime_providers_cuda.so needs libnvinfer.so.8: "
        "target jetpack6 provides TensorRT 10.3, which has no libnvinfer.so.8"
    ]


def test_gpu_libraries_on_a_target_without_cuda_say_so(catalog: Catalog) -> None:
    report, _ = _report(JP6_WHEEL, _lib("libcuda.so.1", "libcudart.so.12"))
    _check_libraries(report, set(), _target(catalog, "bookworm-arm64"))
    assert all("has no" in problem and "stack" in problem for problem in report.problems)
    assert len(report.problems) == 2


def test_a_library_grafted_into_the_wheel_is_not_a_problem(catalog: Catalog) -> None:
    report, _ = _report(JP6_WHEEL, _lib("libzstd-9a8b7c6d.so.1.5.4"))
    _check_libraries(report, {"libzstd-9a8b7c6d.so.1.5.4"}, _target(catalog, "jetpack6"))
    assert report.problems == []
    _check_libraries(report, set(), _target(catalog, "jetpack6"))
    assert report.problems == [
        "libonnxruntime_providers_cuda.so needs libzstd-9a8b7c6d.so.1.5.4: neither the wheel "
        "nor target jetpack6 provides it (repair would graft it)"
    ]


@pytest.mark.parametrize(
    ("wheel", "target", "problem"),
    [
        (
            "x-1.0-cp310-cp310-manylinux_2_39_aarch64.whl",
            "jetpack6",
            "wheel is tagged manylinux_2_39, target jetpack6 has glibc 2.35",
        ),
        (
            "x-1.0-cp38-cp38-manylinux2014_aarch64.whl",
            "jetpack5",
            None,
        ),
        (
            "x-1.0-cp310-cp310-manylinux_2_17_aarch64.manylinux_2_39_aarch64.whl",
            "jetpack6",
            None,  # the lowest tag of a compressed set decides
        ),
    ],
)
def test_manylinux_tag_against_the_targets_glibc(
    catalog: Catalog, wheel: str, target: str, problem: str | None
) -> None:
    report, tags = _report(wheel)
    _check_glibc(report, tags, _target(catalog, target))
    assert report.problems == ([problem] if problem else [])


def test_a_plain_linux_wheel_is_judged_by_its_glibc_symbol_versions(catalog: Catalog) -> None:
    report, tags = _report("x-1.0-cp310-cp310-linux_aarch64.whl", _lib(glibc="2.38"))
    _check_glibc(report, tags, _target(catalog, "jetpack6"))
    assert report.notes == [
        "not a manylinux wheel: its glibc need is read from the symbol versions"
    ]
    assert report.problems == ["its libraries need glibc 2.38, target jetpack6 has glibc 2.35"]


@pytest.mark.parametrize(
    ("wheel", "fits"),
    [
        ("x-1.0-cp310-cp310-manylinux_2_35_aarch64.whl", True),
        ("x-1.0-cp311-cp311-manylinux_2_35_aarch64.whl", False),
        ("x-1.0-cp38-abi3-manylinux_2_35_aarch64.whl", True),  # abi3 from 3.8 up
        ("x-1.0-cp311-abi3-manylinux_2_35_aarch64.whl", False),
        ("x-1.0-py3-none-any.whl", True),
    ],
)
def test_python_tag_against_the_targets_python(catalog: Catalog, wheel: str, fits: bool) -> None:
    report, tags = _report(wheel)
    _check_python(report, tags, _target(catalog, "jetpack6"))
    assert (report.problems == []) is fits


def test_architecture_of_tags_and_of_elf_files(catalog: Catalog) -> None:
    target = _target(catalog, "jetpack6")
    report, tags = _report("x-1.0-cp310-cp310-manylinux_2_35_x86_64.whl", _lib(machine="x86_64"))
    _check_arch(report, tags, target)
    assert report.problems == [
        "wheel is for x86_64, target jetpack6 is aarch64",
        "onnxruntime/capi/libonnxruntime_providers_cuda.so is x86_64 code, target is aarch64",
    ]


def test_execution_providers_are_read_from_library_names() -> None:
    members = [
        "onnxruntime/capi/libonnxruntime_providers_shared.so",
        "onnxruntime/capi/libonnxruntime_providers_cuda.so",
        "onnxruntime/capi/libonnxruntime_providers_tensorrt.so",
        "onnxruntime/capi/onnxruntime_pybind11_state.so",
    ]
    assert _providers(members) == ["CUDAExecutionProvider", "TensorrtExecutionProvider"]


def test_a_wheel_without_the_expected_tensorrt_provider_is_incompatible(
    catalog: Catalog, tmp_path: Path
) -> None:
    wheel = make_wheel(
        tmp_path,
        "onnxruntime-gpu",
        "1.23.2",
        tag="cp310-cp310-manylinux_2_35_aarch64",
        files={"onnxruntime/capi/libonnxruntime_providers_cuda.so": b"not elf"},
    )
    assert wheel.name == JP6_WHEEL
    report = inspect_wheel(
        wheel,
        _target(catalog, "jetpack6"),
        ("CUDAExecutionProvider", "TensorrtExecutionProvider"),
    )
    assert report.providers == ["CUDAExecutionProvider"]
    assert report.problems == [
        "no TensorrtExecutionProvider library in the wheel (target jetpack6 expects it)"
    ]
    assert report.to_json()["compatible"] is False


def test_a_file_that_is_not_a_wheel_is_reported_or_a_usage_error(
    catalog: Catalog, tmp_path: Path
) -> None:
    broken = tmp_path / "x-1.0-py3-none-any.whl"
    broken.write_text("not a zip")
    report = inspect_wheel(broken, _target(catalog, "jetpack6"))
    assert not report.compatible and report.libraries == []
    assert report.problems == ["not a zip: File is not a zip file"]
    assert report.to_json()["integrity"] == [
        {"rule": "not a zip", "detail": "File is not a zip file"}
    ]
    with pytest.raises(UsageError, match="not a wheel file name"):
        inspect_wheel(tmp_path / "notes.txt", _target(catalog, "jetpack6"))


def test_inspect_lists_the_problems_of_the_file_itself(catalog: Catalog, tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path,
        tag="cp310-cp310-manylinux_2_35_aarch64",
        files={"farm_probe/_c.so": elf(EM_X86_64)},
    )
    rewrite(wheel, {"farm_probe/payload.bin": b"changed after RECORD was written"})
    report = inspect_wheel(wheel, _target(catalog, "jetpack6"))
    assert [problem.rule for problem in report.integrity] == ["RECORD", "architecture"]
    assert report.problems[:2] == [str(problem) for problem in report.integrity]
    assert not report.compatible
