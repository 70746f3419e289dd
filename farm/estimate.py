"""How long a planned build should take, from a measured one.

A recipe may carry the figures of a real build (``build.measured``: the number of compile
steps and the sum of their times in ninja's log, with the CUDA sources' share apart). A plan
scales them to its own job: CUDA compile time by the number of SM architectures, the total
by the parallel jobs, and for the emulated strategy by how much slower a compiler runs
under QEMU. It is an estimate for sizing time limits and warning before hours of emulation,
not a promise; the plan says what it was derived from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from farm.models import MeasuredBuild, Strategy

# How many times slower g++ compiles under QEMU 10 user emulation than natively on the same
# x86_64 machine (README, "Emulated or cross"; `python benchmarks/cross.py` compares whole
# builds, where pip and configure steps narrow nothing: zstandard 49x).
QEMU_COMPILE_SLOWDOWN = 11.0


@dataclass(frozen=True, kw_only=True)
class BuildEstimate:
    objects: int
    compile_s: float  # compile time of one job at a time (the sum over steps)
    jobs: int
    strategy: Strategy
    basis: str

    @property
    def wall_s(self) -> float:
        """The compile's wall time with the plan's parallel jobs, under the strategy."""
        factor = QEMU_COMPILE_SLOWDOWN if self.strategy == "emulated" else 1.0
        return self.compile_s * factor / self.jobs

    def to_json(self) -> dict[str, Any]:
        return {
            "objects": self.objects,
            "compile_s": round(self.compile_s),
            "jobs": self.jobs,
            "qemu_slowdown": QEMU_COMPILE_SLOWDOWN if self.strategy == "emulated" else None,
            "wall_s": round(self.wall_s),
            "basis": self.basis,
        }

    def describe(self) -> str:
        return (
            f"about {duration(self.wall_s)} to compile ({self.objects} objects, "
            f"{duration(self.compile_s)} of compiling measured cross"
            + (f", x{QEMU_COMPILE_SLOWDOWN:g} under QEMU" if self.strategy == "emulated" else "")
            + f", {self.jobs} parallel job{'s' if self.jobs != 1 else ''})"
        )


def estimate(
    measured: MeasuredBuild, *, architectures: int, jobs: int, strategy: Strategy
) -> BuildEstimate:
    """Scale a measured build to a job of ``architectures`` SMs and ``jobs`` parallel jobs."""
    per_arch = measured.cuda_compile_s / measured.cuda_architectures
    compile_s = measured.compile_s - measured.cuda_compile_s + per_arch * max(architectures, 1)
    return BuildEstimate(
        objects=measured.objects,
        compile_s=compile_s,
        jobs=jobs,
        strategy=strategy,
        basis=measured.where,
    )


def duration(seconds: float) -> str:
    """A duration as people say it: "45 min", "8.6 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
