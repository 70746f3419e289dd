"""A wheel is what its file name says: METADATA's name and version, WHEEL's tags and build
number agree with it, and the name itself keeps to PEP 427's alphabet; otherwise the wheel
is refused before anything is sent (an installer finds a wheel by its name and installs
what its metadata says)."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.wheelcheck import file_name_problem, verify_wheel
from tests.registries.wheels import make_wheel, rewrite


def _rules(path: Path) -> list[str]:
    return [f"{problem.rule}: {problem.detail}" for problem in verify_wheel(path)]


def test_a_sound_wheel_has_no_problem(tmp_path: Path) -> None:
    assert _rules(make_wheel(tmp_path, "farm-probe", "0.4.0")) == []


def test_metadata_of_another_project_and_version_is_refused(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "farm-probe", "0.4.0")
    metadata = b"Metadata-Version: 2.1\nName: onnxruntime-gpu\nVersion: 9.9.9\n"
    rewrite(wheel, {"farm_probe-0.4.0.dist-info/METADATA": metadata})
    rules = [rule for rule in _rules(wheel) if rule.startswith("metadata")]
    assert rules == [
        "metadata: METADATA names 'onnxruntime-gpu', the file name 'farm-probe'",
        "metadata: METADATA has version '9.9.9', the file name 0.4.0",
    ]


def test_wheel_tags_and_build_must_be_the_file_names(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "farm-probe", "0.4.0", tag="cp311-cp311-linux_aarch64")
    text = b"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: py3-none-any\nBuild: 7\n"
    rewrite(wheel, {"farm_probe-0.4.0.dist-info/WHEEL": text})
    rules = [rule for rule in _rules(wheel) if rule.startswith("metadata")]
    assert rules == [
        "metadata: WHEEL's tags py3-none-any are not the file name's cp311-cp311-linux_aarch64",
        "metadata: WHEEL's Build '7' is not the file name's build tag",
    ]


@pytest.mark.parametrize(
    "name",
    [
        "farm_probe-0.4.0-py3-none-any$(id).whl",
        "farm_probe-0.4.0-py3-none-any\nRUN.whl",
        "farm_probe-0.4.0-py3-none-any;rm.whl",
        "farm probe-0.4.0-py3-none-any.whl",
        "../farm_probe-0.4.0-py3-none-any.whl",
    ],
)
def test_names_outside_the_pep_427_alphabet_are_refused(name: str) -> None:
    problem = file_name_problem(name)
    assert problem is not None and problem.rule == "file name"
    assert "\n" not in problem.detail


def test_build_numbered_and_compressed_tag_names_are_fine() -> None:
    assert file_name_problem("farm_demo-0.1.0-1-cp311-cp311-manylinux_2_36_aarch64.whl") is None
    name = "onnxruntime_gpu-1.21.0-cp313-cp313-manylinux_2_39_aarch64.manylinux_2_41_aarch64.whl"
    assert file_name_problem(name) is None
