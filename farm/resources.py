"""What the builder machine offers, and how much parallel work it can take.

Out-of-memory kills while nvcc compiles onnxruntime's CUDA kernels are the
most reported failure of Jetson builds (onnxruntime issues #20613, #18579;
jetson-containers #768, #1543): a bare ``--parallel`` starts one job per CPU
whatever the memory. Jobs are therefore sized from memory first, CPUs second.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from farm.errors import UsageError


@dataclass(frozen=True, kw_only=True)
class BuilderResources:
    cpus: int
    memory_gib: float
    source: str  # "detected" or where the figures were configured


@dataclass(frozen=True, kw_only=True)
class Parallelism:
    jobs: int
    nvcc_threads: int


def builder_resources(
    cpus: int | None = None,
    memory_gib: float | None = None,
    *,
    configured_cpus: int | None = None,
    configured_memory_gib: float | None = None,
) -> BuilderResources:
    """Figures given on the command line, else configured (``FARM_BUILDER_CPUS``,
    ``FARM_BUILDER_MEMORY_GIB`` in :class:`farm.settings.Settings`), else this host's.

    The local docker engine builds on this host; a remote or native builder
    (buildx ``--builder``) is described with the flags or environment variables.
    """
    if cpus or memory_gib:
        source = "command line"
    elif configured_cpus or configured_memory_gib:
        source = "environment"
    else:
        source = "detected"
    final_cpus = int(cpus or configured_cpus or _host_cpus())
    final_memory = memory_gib or configured_memory_gib or _host_memory_gib()
    if final_cpus < 1 or final_memory <= 0:
        raise UsageError(
            f"builder resources must be positive (cpus={final_cpus}, memory={final_memory} GiB)"
        )
    return BuilderResources(cpus=final_cpus, memory_gib=final_memory, source=source)


def _host_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _host_memory_gib() -> float:
    """MemTotal, lowered to the cgroup limit when the farm itself runs in a container."""
    total = _meminfo_total_bytes()
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if raw.isdigit():
            total = min(total, int(raw))
    return total / 2**30


def _meminfo_total_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30  # a conservative guess where /proc is missing


def plan_parallelism(
    resources: BuilderResources,
    *,
    job_memory_gib: float,
    nvcc_thread_memory_gib: float,
    max_nvcc_threads: int,
    reserve_memory_gib: float,
) -> Parallelism:
    """Compile jobs that fit in memory, then nvcc threads with what memory and CPUs remain.

    onnxruntime's docs advise ``--parallel 4 --nvcc_threads 1`` below 64 GB;
    a CUDA compile job is budgeted at ``job_memory_gib`` with one nvcc thread.
    """
    usable = max(resources.memory_gib - reserve_memory_gib, job_memory_gib)
    jobs = max(1, min(resources.cpus, math.floor(usable / job_memory_gib)))
    spare_per_job = usable / jobs - job_memory_gib
    by_memory = 1 + math.floor(spare_per_job / nvcc_thread_memory_gib)
    by_cpu = resources.cpus // jobs
    threads = max(1, min(by_memory, by_cpu, max_nvcc_threads))
    return Parallelism(jobs=jobs, nvcc_threads=threads)
