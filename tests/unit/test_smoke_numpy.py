"""Which NumPy majors an onnxruntime smoke test runs under, and how their results are reported."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from farm import smoke
from farm.catalog import Catalog
from farm.errors import SmokeFailed
from farm.models import Target
from farm.process import Finished
from farm.smoke import (
    GENERIC_ONNXRUNTIME_SMOKE,
    VENV,
    SmokePlan,
    environment_tag,
    plan_smoke,
    render_environment,
)
from farm.smoke_checks import onnxruntime_check
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


def _wheel(tmp_path: Path, *requires: str, name: str = "onnxruntime-1.20.1") -> Path:
    path = tmp_path / f"{name}-cp311-cp311-manylinux_2_28_aarch64.whl"
    lines = [f"Requires-Dist: {line}" for line in requires]
    metadata = "\n".join(["Metadata-Version: 2.1", f"Name: {name.split('-')[0]}", *lines]) + "\n"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name.replace('-', '_')}.dist-info/METADATA", metadata)
    return path


@pytest.fixture
def bookworm(catalog: Catalog) -> Target:
    return catalog.targets["bookworm-arm64"].model


def test_an_onnxruntime_plan_has_one_venv_per_major(tmp_path: Path, bookworm: Target) -> None:
    plan = plan_smoke(
        _wheel(tmp_path, *ONNXRUNTIME_1_20), bookworm, "3.11", GENERIC_ONNXRUNTIME_SMOKE
    )
    assert [(env.venv, env.requirements) for env in plan.environments] == [
        (f"{VENV}-numpy2", ("numpy>=2,<3",)),
        (f"{VENV}-numpy1", ("numpy>=1,<2",)),
    ]
    assert plan.skipped == ()
    dockerfile = render_environment("x.whl", bookworm, "3.11", plan)
    assert f"{VENV}-numpy2/bin/pip install --only-binary=:all: 'numpy>=2,<3'" in dockerfile
    assert f"{VENV}-numpy1/bin/pip install /farm/wheels/x.whl 'numpy>=1,<2'" in dockerfile


def test_a_plan_with_no_numpy_to_run_fails_before_building(
    tmp_path: Path, bookworm: Target
) -> None:
    wheel = _wheel(tmp_path, "numpy>=2")
    with pytest.raises(SmokeFailed, match=r"check numpy: no NumPy release can run .*3\.8"):
        plan_smoke(wheel, bookworm, "3.8", GENERIC_ONNXRUNTIME_SMOKE)


def test_the_environment_tag_changes_with_the_requirement_set(
    tmp_path: Path, bookworm: Target
) -> None:
    wheel = _wheel(tmp_path, "numpy>=1.21.6")
    plan = plan_smoke(wheel, bookworm, "3.11", GENERIC_ONNXRUNTIME_SMOKE)
    tag = environment_tag(wheel, bookworm, "3.11", plan)
    assert environment_tag(wheel, bookworm, "3.11", plan) == tag
    only_numpy_1 = SmokePlan(environments=plan.environments[1:])
    assert environment_tag(wheel, bookworm, "3.11", only_numpy_1) != tag


def _finished(output: str, returncode: int = 0) -> Finished:
    return Finished(argv=("docker", "run"), returncode=returncode, output=output)


def _line(*checks: tuple[str, bool], numpy: str) -> str:
    names = [{"name": name, "ok": ok, "detail": "d"} for name, ok in checks]
    return "noise\n" + json.dumps({"checks": names, "info": {"numpy": numpy, "version": "1"}})


def test_the_report_names_the_major_that_failed(tmp_path: Path, bookworm: Target) -> None:
    plan = plan_smoke(_wheel(tmp_path, "numpy"), bookworm, "3.11", GENERIC_ONNXRUNTIME_SMOKE)
    outputs = [
        _finished(_line(("import numpy 2.3.5", False), numpy="2.3.5")),
        _finished(
            _line(("import numpy 1.26.4", True), ("inference numpy 1.26.4", True), numpy="1.26.4")
        ),
    ]
    report = smoke._report(tmp_path / "w.whl", bookworm, plan, outputs, "built", 1.0)
    assert not report.passed
    assert report.first_failure() == {"name": "import numpy 2.3.5", "ok": False, "detail": "d"}
    assert report.info["numpy"] == {"2.x": "2.3.5", "1.x": "1.26.4"}


def test_a_crash_is_a_failed_run_of_that_major_and_a_skip_is_reported(
    tmp_path: Path, bookworm: Target
) -> None:
    wheel = _wheel(tmp_path, "numpy")
    plan = plan_smoke(wheel, bookworm, "3.13", GENERIC_ONNXRUNTIME_SMOKE)
    crashed = _finished("Segmentation fault", returncode=139)
    report = smoke._report(wheel, bookworm, plan, [crashed], "cached", 1.0)
    assert report.checks[0] == {
        "name": "run numpy 2.x",
        "ok": False,
        "detail": "Segmentation fault (ended by SIGSEGV, exit 139)",
    }
    skip = report.checks[1]
    assert skip["name"] == "numpy 1.x" and skip["ok"] and skip["skipped"]
    assert skip["detail"].startswith("not run: NumPy 1.x has no release for Python 3.13")
    assert report.info["numpy"]["2.x"] == "not imported"


def test_numpys_warning_about_an_extension_built_for_numpy_1_fails_the_import() -> None:
    printed = (
        "\nA module that was compiled using NumPy 1.x cannot be run in\n"
        "NumPy 2.4.6 as it may crash. To support both 1.x and 2.x\n"
        "versions of NumPy, modules must be compiled with NumPy 2.0.\n"
    )
    assert onnxruntime_check.numpy_mismatch(printed, "1.16.3") == (
        "onnxruntime 1.16.3 was compiled using NumPy 1.x and cannot be run in NumPy 2.4.6 "
        "(NumPy: it may crash)"
    )
    assert onnxruntime_check.numpy_mismatch("some other warning\n", "1.20.1") == ""
