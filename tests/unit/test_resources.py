from __future__ import annotations

import pytest

from farm.errors import UsageError
from farm.resources import BuilderResources, builder_resources, plan_parallelism

SIZING = {
    "job_memory_gib": 6.0,
    "nvcc_thread_memory_gib": 2.0,
    "max_nvcc_threads": 4,
    "reserve_memory_gib": 2.0,
}


@pytest.mark.parametrize(
    ("cpus", "memory", "jobs", "threads"),
    [
        (2, 24, 2, 1),  # this project's CI runner: CPU-bound
        (6, 8, 1, 1),  # Orin Nano 8 GB building natively: one job or it is OOM-killed
        (12, 64, 10, 1),  # AGX Orin 64 GB: memory allows 10 of its 12 cores
        (16, 128, 16, 1),  # a big x86 builder: every core, nvcc threads limited by CPUs
        (4, 128, 4, 1),  # few cores, lots of memory: never more threads than cores
    ],
)
def test_parallelism_is_sized_from_memory_first(
    cpus: int, memory: float, jobs: int, threads: int
) -> None:
    result = plan_parallelism(BuilderResources(cpus=cpus, memory_gib=memory, source="t"), **SIZING)
    assert (result.jobs, result.nvcc_threads) == (jobs, threads)
    assert result.jobs * SIZING["job_memory_gib"] <= max(memory - 2, SIZING["job_memory_gib"])


def test_resources_from_flags_environment_or_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FARM_BUILDER_CPUS", raising=False)
    monkeypatch.delenv("FARM_BUILDER_MEMORY_GIB", raising=False)
    detected = builder_resources()
    assert detected.source == "detected" and detected.cpus >= 1 and detected.memory_gib > 0
    monkeypatch.setenv("FARM_BUILDER_CPUS", "12")
    monkeypatch.setenv("FARM_BUILDER_MEMORY_GIB", "64")
    assert builder_resources() == BuilderResources(cpus=12, memory_gib=64.0, source="environment")
    assert builder_resources(cpus=4, memory_gib=16).source == "command line"


def test_bad_environment_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARM_BUILDER_MEMORY_GIB", "lots")
    with pytest.raises(UsageError, match="FARM_BUILDER_MEMORY_GIB='lots' is not a number"):
        builder_resources()
