"""A wheel handed over (ours, PyPI's, anyone's) repaired, smoke-tested or inspected for a target.

The pipeline runs these stages on the wheels it builds; ``farm repair``, ``farm smoke``
and ``farm inspect`` run them on any wheel file. What a wheel is expected to provide
on a target comes from the recipe that builds it (:func:`farm.smoke.find_smoke`),
so both paths give the same verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from farm.baseimage import ensure_base_image
from farm.catalog import Catalog
from farm.debs import LockedFiles, load_lock
from farm.doctor import preflight
from farm.engine import Engine
from farm.errors import UsageError
from farm.inspect import WheelReport, inspect_wheel
from farm.locking import WrittenLock, write_lock
from farm.models import Target
from farm.pipeline import Section
from farm.repair import RepairedWheel, run_repair
from farm.settings import Settings
from farm.smoke import (
    CHECK_TIMEOUT_S,
    DeviceMode,
    SmokeReport,
    expected_providers,
    run_smoke,
    smoke_for_wheel,
    wheel_providers,
)
from farm.wheelcheck import file_name_problem


def _wheel_and_target(catalog: Catalog, wheel: Path, target_name: str) -> Target:
    target = catalog.target(target_name).model
    bad_name = file_name_problem(wheel.name)
    if bad_name is not None:
        raise UsageError(f"{bad_name.detail}")
    if not wheel.is_file():
        raise UsageError(f"{wheel}: no such wheel file")
    return target


def _target_ready(
    target: Target, settings: Settings, written: dict[str, Path], section: Section
) -> Engine:
    """The engine checked, the directories writable, the target's base image there."""
    engine = preflight(target.platform, settings.engine, settings.cache_dir, written)
    with section("base_image", f"base image {target.base_image.pinned}") as line:
        ensure_base_image(target, engine, settings.cache_dir, line, settings.mirrors)
    return engine


def repair(
    catalog: Catalog,
    settings: Settings,
    wheel: Path,
    target_name: str,
    output_dir: Path,
    section: Section,
) -> RepairedWheel:
    """auditwheel repair in the target, with the target packages its recipe builds against."""
    target = _wheel_and_target(catalog, wheel, target_name)
    engine = _target_ready(target, settings, {"--output-dir": output_dir}, section)
    with section("repair", f"repairing {wheel.name} for {target.name}") as line:
        recipe = catalog.recipe_for_wheel(wheel.name)
        build = recipe.model.for_target(target.name).build if recipe else None
        packages = build.target_packages() if build else ()
        locked = None
        lock_name: str | None = getattr(build, "package_lock", None)
        if recipe and lock_name:
            lock = load_lock(recipe.path, lock_name, packages)
            locked = LockedFiles(lock=lock, cache=settings.cache_dir, mirrors=settings.mirrors)
        return run_repair(
            wheel, target, target.default_python, engine, output_dir, line, packages, locked=locked
        )


@dataclass(frozen=True, kw_only=True)
class SmokeAsk:
    """What ``farm smoke`` was asked beyond the wheel and target."""

    expect_providers: tuple[str, ...] = ()  # default: the recipe's expectation
    device: DeviceMode = "auto"  # "auto": detected on a Jetson
    record_dir: Path | None = None  # default: next to the wheel
    timeout: float = CHECK_TIMEOUT_S


def smoke(
    catalog: Catalog,
    settings: Settings,
    wheel: Path,
    target_name: str,
    ask: SmokeAsk,
    section: Section,
) -> SmokeReport:
    """The wheel installed in a fresh target container and its recipe's checks run."""
    target = _wheel_and_target(catalog, wheel, target_name)
    test = smoke_for_wheel(catalog, wheel.name)
    expected = ask.expect_providers or expected_providers(test, target)
    record_dir = ask.record_dir or wheel.parent
    engine = _target_ready(target, settings, {"the smoke record's directory": record_dir}, section)
    with section("smoke", f"smoke test of {wheel.name} on {target.name}") as line:
        return run_smoke(
            wheel,
            target,
            target.default_python,
            test,
            engine,
            expect_providers=expected,
            device=ask.device,
            record_dir=record_dir,
            on_line=line,
            timeout=ask.timeout,
        )


def inspect(catalog: Catalog, wheel: Path, target_name: str) -> WheelReport:
    """Whether the wheel can work on the target, with its recipe's provider expectations."""
    target = _wheel_and_target(catalog, wheel, target_name)
    return inspect_wheel(wheel, target, wheel_providers(catalog, wheel.name, target))


def lock(
    catalog: Catalog, settings: Settings, package: str, target_name: str, section: Section
) -> WrittenLock:
    """Pin what the package's build installs into the target (``farm lock``)."""
    entry = catalog.recipe(package)
    target = catalog.target(target_name).model
    engine = _target_ready(target, settings, {}, section)
    with section("lock", f"asking apt in {target.name}'s base image") as line:
        return write_lock(entry, target, engine, settings.cache_dir, settings.mirrors, line)
