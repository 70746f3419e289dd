"""Plans estimate their compile time from a recipe's measured build."""

from __future__ import annotations

import pytest

from farm.catalog import Catalog
from farm.estimate import QEMU_COMPILE_SLOWDOWN, duration, estimate
from farm.models import MeasuredBuild
from farm.plan import plan_job
from farm.resources import BuilderResources

MEASURED = MeasuredBuild(
    objects=1000, compile_s=6000, cuda_compile_s=2000, cuda_architectures=1, jobs=2, where="x"
)


def test_cuda_time_scales_with_the_sm_count_and_all_of_it_with_the_jobs() -> None:
    one = estimate(MEASURED, architectures=1, jobs=2, strategy="cross")
    two = estimate(MEASURED, architectures=2, jobs=2, strategy="cross")
    assert (one.compile_s, one.wall_s) == (6000, 3000)
    assert (two.compile_s, two.wall_s) == (8000, 4000)
    assert estimate(MEASURED, architectures=1, jobs=4, strategy="cross").wall_s == 1500


def test_emulation_multiplies_by_the_measured_qemu_slowdown() -> None:
    emulated = estimate(MEASURED, architectures=1, jobs=2, strategy="emulated")
    assert emulated.wall_s == 3000 * QEMU_COMPILE_SLOWDOWN
    assert emulated.to_json()["qemu_slowdown"] == QEMU_COMPILE_SLOWDOWN
    assert "under QEMU" in emulated.describe()


def test_a_measured_build_cannot_have_more_cuda_time_than_time() -> None:
    with pytest.raises(ValueError, match="is more than compile_s, of which it is part"):
        MeasuredBuild(objects=1, compile_s=10, cuda_compile_s=11, where="x")


@pytest.mark.parametrize(("seconds", "text"), [(45, "45 s"), (600, "10 min"), (9000, "2.5 h")])
def test_durations_read_as_people_say_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_the_onnxruntime_plan_carries_its_estimate(
    catalog: Catalog, ci_runner: BuilderResources
) -> None:
    jetpack5 = plan_job(catalog, "onnxruntime-gpu", "jetpack5", resources=ci_runner)
    jetpack6 = plan_job(catalog, "onnxruntime-gpu", "jetpack6", resources=ci_runner)
    assert jetpack5.estimate is not None and jetpack6.estimate is not None
    # Two SMs (Xavier and Orin) compile the CUDA sources twice.
    assert jetpack5.estimate.compile_s > jetpack6.estimate.compile_s
    assert jetpack6.to_json()["estimate"]["jobs"] == jetpack6.parallelism.jobs
    # A package without measured figures has no estimate.
    assert plan_job(catalog, "demo", "bookworm-arm64", resources=ci_runner).estimate is None
