"""Which NumPy majors an onnxruntime smoke test runs under, decided before its environment.

onnxruntime's Python extension is compiled against one NumPy C API: a wheel built
against NumPy 1 cannot run under NumPy 2 (onnxruntime#27562: 1.23.0's Jetson
wheels). The smoke test therefore runs its inference check once under the newest
NumPy 1.x and once under the newest 2.x, each in its own virtual environment. The
farm decides only which majors apply; pip picks the newest release of each inside
the environment build, from the major's range and the wheel's own constraint.

A major is skipped, and the report says why, when the wheel's Python has no
release of it or the wheel's metadata (``Requires-Dist: numpy...``) excludes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

# Newest first: the first major that runs gets the full check, the others the inference.
MAJORS = (2, 1)
# The Pythons each major has releases for, from NumPy's release notes: 1.26, the last
# 1.x, supports Python 3.9 to 3.12 (older 1.x releases older Pythons); 2.0 needs 3.9.
PYTHONS_OF_MAJOR = {1: SpecifierSet("<3.13"), 2: SpecifierSet(">=3.9")}
# A constraint admits a major when it admits one of these releases of it.
_MINORS, _PATCHES = 100, 20


@dataclass(frozen=True, kw_only=True)
class NumpyMajor:
    major: int
    skipped: str = ""  # why it does not run for this wheel; empty when it runs

    @property
    def series(self) -> str:
        return f"{self.major}.x"

    @property
    def label(self) -> str:
        return f"numpy {self.series}"

    @property
    def requirement(self) -> str:
        """The pip requirement of the newest release of this major."""
        return f"numpy>={self.major},<{self.major + 1}"


def numpy_majors(python: str, machine: str, requires_dist: Iterable[str]) -> tuple[NumpyMajor, ...]:
    """Each NumPy major, newest first, with why it is skipped for this Python and wheel."""
    constraint = wheel_numpy_constraint(requires_dist, python, machine)
    return tuple(
        NumpyMajor(major=major, skipped=_skip_reason(major, python, constraint)) for major in MAJORS
    )


def wheel_numpy_constraint(requires_dist: Iterable[str], python: str, machine: str) -> SpecifierSet:
    """The NumPy versions a wheel's ``Requires-Dist`` lines admit under ``python``."""
    constraint = SpecifierSet()
    environment = _marker_environment(python, machine)
    for line in requires_dist:
        requirement = _requirement(line)
        if requirement is None or requirement.name.lower() != "numpy":
            continue
        if requirement.marker is None or requirement.marker.evaluate(environment):
            constraint &= requirement.specifier
    return constraint


def _skip_reason(major: int, python: str, constraint: SpecifierSet) -> str:
    if not PYTHONS_OF_MAJOR[major].contains(python):
        return (
            f"NumPy {major}.x has no release for Python {python} "
            f"(it supports Python {PYTHONS_OF_MAJOR[major]})"
        )
    if not admits_major(constraint, major):
        return f"the wheel requires numpy{constraint}, which excludes NumPy {major}.x"
    return ""


def admits_major(constraint: SpecifierSet, major: int) -> bool:
    """Whether ``constraint`` admits a release ``major.MINOR.PATCH``."""
    return any(
        constraint.contains(Version(f"{major}.{minor}.{patch}"))
        for minor in range(_MINORS)
        for patch in range(_PATCHES)
    )


def runnable(majors: Sequence[NumpyMajor]) -> tuple[NumpyMajor, ...]:
    return tuple(major for major in majors if not major.skipped)


def _requirement(line: str) -> Requirement | None:
    try:
        return Requirement(line)
    except InvalidRequirement:
        return None  # a line pip would refuse too; the install says so


def _marker_environment(python: str, machine: str) -> dict[str, str]:
    """Markers as the target's interpreter evaluates them (packaging fills in the rest)."""
    return {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": machine,
        "extra": "",
    }
