"""Which NumPy majors an onnxruntime smoke test runs under."""

from __future__ import annotations

import pytest

from farm.smoke_numpy import numpy_majors

ONNXRUNTIME_1_20 = ("coloredlogs", "flatbuffers", "numpy>=1.21.6", "packaging", "protobuf")


def _skips(python: str, requires: tuple[str, ...]) -> dict[int, str]:
    return {m.major: m.skipped for m in numpy_majors(python, "aarch64", requires)}


def test_a_python_with_both_majors_runs_both_newest_first() -> None:
    majors = numpy_majors("3.11", "aarch64", ONNXRUNTIME_1_20)
    assert [(m.major, m.skipped, m.requirement) for m in majors] == [
        (2, "", "numpy>=2,<3"),
        (1, "", "numpy>=1,<2"),
    ]


@pytest.mark.parametrize(
    ("python", "skipped", "because"),
    [
        ("3.13", 1, "NumPy 1.x has no release for Python 3.13 (it supports Python <3.13)"),
        ("3.8", 2, "NumPy 2.x has no release for Python 3.8 (it supports Python >=3.9)"),
    ],
)
def test_a_major_without_a_release_for_the_python_is_skipped(
    python: str, skipped: int, because: str
) -> None:
    assert _skips(python, ONNXRUNTIME_1_20) == {skipped: because, 3 - skipped: ""}


def test_the_wheels_own_constraint_can_exclude_a_major() -> None:
    assert _skips("3.11", ("numpy (>=1.24.2,<2)",)) == {
        2: "the wheel requires numpy<2,>=1.24.2, which excludes NumPy 2.x",
        1: "",
    }
    assert _skips("3.11", ("numpy==2.2.6",))[1].endswith("excludes NumPy 1.x")


def test_markers_are_evaluated_for_the_targets_python_and_extras_ignored() -> None:
    requires = (
        'numpy<2; python_version < "3.12"',
        'numpy>=2; python_version >= "3.12"',
        'numpy<1.20; extra == "legacy"',
        "not a requirement (",
    )
    assert [m.major for m in numpy_majors("3.11", "aarch64", requires) if not m.skipped] == [1]
    assert [m.major for m in numpy_majors("3.12", "aarch64", requires) if not m.skipped] == [2]
