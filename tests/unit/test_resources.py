from __future__ import annotations

import pytest

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


def test_resources_from_flags_configuration_or_host() -> None:
    detected = builder_resources()
    assert detected.source == "detected" and detected.cpus >= 1 and detected.memory_gib > 0
    configured = builder_resources(configured_cpus=12, configured_memory_gib=64)
    assert configured == BuilderResources(cpus=12, memory_gib=64.0, source="environment")
    flags = builder_resources(cpus=4, memory_gib=16, configured_cpus=12)
    assert (flags.cpus, flags.source) == (4, "command line")
