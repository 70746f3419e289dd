"""The runner: one build job through build, repair, inspect, smoke, publish and install.

Stages never call each other; this module chains them, records each result
in the ledger under the job's build key, and skips a stage whose result for
the same key is already there and whose output still exists (``force``
runs everything again). A stage failure is recorded and ends the job; the
wheel is published only after its smoke test passed, by the same function as
``farm publish``: a rebuilt release gets the next PEP 427 build number when
the index already holds its file name with other content.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from farm.baseimage import ensure_image, images_for
from farm.build import job_dir, run_build
from farm.credentials import Credentials
from farm.cudastack import DEFAULT_MIRRORS, Mirrors
from farm.engine import Engine
from farm.errors import CorruptRecord, FarmError, host_fault
from farm.inspect import inspect_wheel
from farm.installcheck import run_install_check
from farm.ledger import Ledger, LedgerEntry
from farm.plan import BuildJob
from farm.provenance import provenance_record, stamp_wheel
from farm.publish import PublishRequest, RetryPolicy, publish_wheel, sha256_of
from farm.records import write_record
from farm.registries import IndexLocation, Profile
from farm.render import locked_files
from farm.repair import run_repair
from farm.schemas import SCHEMA_VERSIONS
from farm.smoke import check_definition, expected_providers, run_smoke
from farm.wheelzip import content_digest

PIPELINE_SCHEMA_VERSION = SCHEMA_VERSIONS["pipeline"]


class Section(Protocol):
    def __call__(
        self, name: str, header: str
    ) -> contextlib.AbstractContextManager[Callable[[str], None]]: ...


@dataclass(frozen=True, kw_only=True)
class PublishTarget:
    registry: str
    profile: Profile
    location: IndexLocation
    credentials: Credentials | None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Asked before the index is used, hours after this was resolved: raises unless the
    # destination still stands (the local registry still runs where it did).
    confirm: Callable[[], None] | None = None


@dataclass(frozen=True, kw_only=True)
class PipelineOptions:
    out_root: Path
    cache_dir: Path
    mirrors: Mirrors = DEFAULT_MIRRORS
    force: bool = False
    no_cache: bool = False  # build without BuildKit's layer cache
    publish: PublishTarget | None = None
    install_check: bool = True
    build: bool = True  # False: only publish what is built and smoke-tested


@dataclass(frozen=True, kw_only=True)
class StageResult:
    stage: str
    state: str  # "ran", "skipped" or "failed"
    detail: str
    duration_s: float = 0.0


@dataclass(kw_only=True)
class PipelineResult:
    job: BuildJob
    entry: LedgerEntry
    stages: list[StageResult] = field(default_factory=list)
    wheel: Path | None = None
    error: FarmError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def did_work(self) -> bool:
        return any(stage.state != "skipped" for stage in self.stages)

    def to_json(self) -> dict[str, Any]:
        spec = self.job.spec
        return {
            "build_key": self.job.build_key,
            "package": spec.recipe.name,
            "version": spec.version,
            "target": spec.target.name,
            "python": spec.python,
            "ok": self.ok,
            "error": self.error.message if self.error else None,
            "wheel": str(self.wheel) if self.wheel else None,
            "stages": [
                {
                    "stage": stage.stage,
                    "state": stage.state,
                    "detail": stage.detail,
                    "duration_s": round(stage.duration_s, 2),
                }
                for stage in self.stages
            ],
        }


class _Failed(Exception):
    """Ends the job after a stage failure was recorded."""


def new_entry(job: BuildJob, job_dir: Path) -> LedgerEntry:
    spec = job.spec
    return LedgerEntry(
        build_key=job.build_key,
        package=spec.recipe.name,
        distribution=spec.recipe.distribution or spec.recipe.name,
        version=spec.version,
        target=spec.target.name,
        python=spec.python,
        job_dir=str(job_dir),
    )


class Runner:
    """Runs one job's stages against the ledger; see the module docstring."""

    def __init__(
        self,
        job: BuildJob,
        engine: Engine,
        ledger: Ledger,
        options: PipelineOptions,
        section: Section,
        say: Callable[[str], None],
    ) -> None:
        self.job, self.engine, self.ledger, self.options = job, engine, ledger, options
        self.section, self.say = section, say
        self.job_dir = job_dir(job, options.out_root)
        existing = None if options.force else self._recorded_entry()
        self.entry = existing or new_entry(job, self.job_dir)
        self.result = PipelineResult(job=job, entry=self.entry)
        self._base_ready = False
        self._hashes: dict[tuple[Path, int, int], str] = {}

    def run(self) -> PipelineResult:
        if not self.options.build and not self._smoke_tested():
            self._skip("build", "not built and smoke-tested yet, and building is off (--no-build)")
            return self.result
        try:
            built = self._build()
            repaired = self._repair(built)
            self._inspect(repaired)
            self._smoke(repaired)
            self.result.wheel = repaired
            if self.options.publish is not None:
                published = self._publish(repaired, self.options.publish)
                self.result.wheel = published
                if self.options.install_check:
                    self._install(published, self.options.publish)
        except _Failed:
            pass
        return self.result

    # --- bookkeeping -----------------------------------------------------------

    def _recorded_entry(self) -> LedgerEntry | None:
        try:
            return self.ledger.get(self.job.build_key)
        except CorruptRecord as exc:
            self.say(f"warning: {exc.message}; taken as absent, so every stage runs again")
            return None

    def _skip(self, stage: str, why: str) -> None:
        self.say(f"{stage}: skipped, {why}")
        self.result.stages.append(StageResult(stage=stage, state="skipped", detail=why))

    @contextlib.contextmanager
    def _stage(self, stage: str, registry: str | None = None) -> Iterator[dict[str, Any]]:
        """Run a stage; what the body puts in the yielded dict is recorded with the result."""
        details: dict[str, Any] = {}
        started = time.monotonic()
        try:
            try:
                yield details
            except OSError as exc:  # the file system said no: a host fault, named
                raise host_fault(exc, f"{stage} stage") from None
        except FarmError as exc:
            duration = time.monotonic() - started
            self.entry.record(stage, "failed", duration, registry, error=exc.message)
            self.ledger.save(self.entry)
            self.result.stages.append(
                StageResult(stage=stage, state="failed", detail=exc.message, duration_s=duration)
            )
            self.result.error = exc
            raise _Failed from None
        duration = time.monotonic() - started
        state = "skipped" if details.pop("unchanged", False) else "ran"
        # An unchanged result (the index already held these bytes) keeps later results valid.
        self.entry.record(stage, "passed", duration, registry, invalidate=state == "ran", **details)
        self.ledger.save(self.entry)
        detail = str(details.get("summary", "passed"))
        if state == "skipped":
            self.say(f"{stage}: skipped, {detail}")
        self.result.stages.append(
            StageResult(stage=stage, state=state, detail=detail, duration_s=duration)
        )

    def _base_image(self) -> None:
        if self._base_ready:
            return
        cache = self.options.cache_dir
        target, strategy = self.job.spec.target, self.job.strategy
        for source in images_for(target, strategy, cache, self.options.mirrors):
            with self.section("base_image", f"image {source.reference}") as line:
                ensure_image(source, self.engine, line)
        self._base_ready = True

    def _smoke_tested(self) -> bool:
        wheel = self._recorded_wheel("repair")
        return (
            self._unchanged("repair", wheel)
            and self._unchanged("inspect", wheel)
            and self._smoke_current(wheel)
        )

    def _sha256(self, path: Path) -> str:
        """sha256 of a file, read once per (path, size, mtime): reruns compare several stages
        with the same wheel, which may be hundreds of megabytes."""
        info = path.stat()
        key = (path, info.st_size, info.st_mtime_ns)
        if key not in self._hashes:
            self._hashes[key] = sha256_of(path)
        return self._hashes[key]

    def _recorded_wheel(self, stage: str) -> Path | None:
        recorded = self.entry.wheel(stage)
        return Path(recorded) if recorded else None

    def _smoke_current(self, wheel: Path | None) -> bool:
        """A passed smoke result for these bytes, by the recipe's current smoke test."""
        recorded = self.entry.stage("smoke")
        current = recorded is not None and recorded.check == self._smoke_check_digest()
        return current and self._unchanged("smoke", wheel)

    def _unchanged(self, stage: str, path: Path | None, registry: str | None = None) -> bool:
        """Whether the ledger's passed result for ``stage`` still matches the file on disk."""
        recorded = self.entry.stage(stage, registry)
        if not self.entry.passed(stage, registry) or recorded is None or path is None:
            return False
        return path.is_file() and recorded.sha256 == self._sha256(path)

    # --- stages ---------------------------------------------------------------------

    def _build(self) -> Path:
        wheel = self._recorded_wheel("build")
        if self._unchanged("build", wheel):
            assert wheel is not None  # noqa: S101 - _unchanged checked it
            self._skip("build", f"built for key {self.job.build_key[:12]} (ledger), {wheel.name}")
            return wheel
        spec = self.job.spec
        header = f"building {spec.recipe.name} {spec.version} for {spec.target.name}"
        with self._stage("build") as details:
            self._base_image()
            if self.job.estimate is not None:
                self.say(f"build: {self.job.estimate.describe()}")
            with self.section("build", f"{header} with {self.engine.describe()}") as line:
                built = run_build(
                    self.job,
                    self.engine,
                    self.options.out_root,
                    line,
                    self.options.cache_dir,
                    no_cache=self.options.no_cache,
                    mirrors=self.options.mirrors,
                )
            if len(built.wheels) != 1:
                raise FarmError(f"the build made {len(built.wheels)} wheels; one was expected")
            wheel = built.wheels[0]
            details.update(
                wheel=str(wheel),
                sha256=self._sha256(wheel),
                toolchain=built.toolchain,
                log=str(built.log),
                summary=f"{wheel.name} in {built.duration_s:.0f} s",
            )
        return wheel

    def _repair(self, built: Path) -> Path:
        wheel = self._recorded_wheel("repair")
        if self._unchanged("repair", wheel):
            assert wheel is not None  # noqa: S101
            self._skip("repair", f"{wheel.name} already repaired for this key")
            return wheel
        target = self.job.spec.target
        with self._stage("repair") as details:
            self._base_image()
            with self.section("repair", f"repairing {built.name} for {target.name}") as line:
                repaired = run_repair(
                    built,
                    target,
                    self.job.spec.python,
                    self.engine,
                    self.job_dir / "repaired",
                    line,
                    self.job.spec.recipe.build.target_packages(),
                    self.job.spec.source_date_epoch,
                    locked_files(self.job.spec, self.options.cache_dir, self.options.mirrors),
                )
            wheel = repaired.wheel
            build = self.entry.stage("build")
            record = provenance_record(self.job, (build.toolchain if build else None) or {})
            stamp_wheel(wheel, record, self.job.spec.source_date_epoch)
            size = wheel.stat().st_size
            details.update(
                wheel=str(wheel),
                sha256=self._sha256(wheel),
                size=size,
                size_before=repaired.size_before,
                provenance=record,
                content_digest=content_digest(wheel),
                summary=f"{repaired.size_before:,} -> {size:,} bytes, provenance stamped",
            )
        return repaired.wheel

    def _inspect(self, wheel: Path) -> None:
        if self._unchanged("inspect", wheel):
            self._skip("inspect", "compatible (ledger)")
            return
        target = self.job.spec.target
        with self._stage("inspect") as details:
            expected = expected_providers(self.job.spec.recipe.smoke, target)
            report = inspect_wheel(wheel, target, expected)
            write_record(
                wheel.parent / "inspect.json",
                "inspect",
                "passed" if report.compatible else "failed",
                0.0,
                report.to_json(),
            )
            if not report.compatible:
                raise FarmError(f"{wheel.name} does not fit {target.name}: {report.problems[0]}")
            details.update(sha256=self._sha256(wheel), summary="compatible")

    def _smoke_check_digest(self) -> str:
        """The smoke test's definition: a changed test must run again on the same bytes."""
        return check_definition(self.job.spec.recipe.smoke)

    def _smoke(self, wheel: Path) -> None:
        if self._smoke_current(wheel):
            self._skip("smoke", "passed for these bytes (ledger)")
            return
        spec = self.job.spec
        with self._stage("smoke") as details:
            self._base_image()
            with self.section("smoke", f"smoke test of {wheel.name} on {spec.target.name}") as line:
                report = run_smoke(
                    wheel,
                    spec.target,
                    spec.python,
                    spec.recipe.smoke,
                    self.engine,
                    expect_providers=expected_providers(spec.recipe.smoke, spec.target),
                    device="auto",
                    record_dir=wheel.parent,
                    on_line=line,
                )
            failure = report.first_failure()
            if failure is not None:
                raise FarmError(
                    f"smoke check {failure['name']} failed on {report.target}: {failure['detail']}"
                )
            details.update(
                sha256=self._sha256(wheel),
                check=self._smoke_check_digest(),
                summary=f"passed ({report.environment})",
            )

    def _publish(self, wheel: Path, where: PublishTarget) -> Path:
        """Publish as `farm publish` does, renumbering on a clash (farm.publish.choose_file)."""
        with self._stage("publish", where.registry) as details:
            if where.confirm is not None:
                where.confirm()
            with self.section("publish", f"publish {wheel.name} to {where.registry}") as line:
                published = publish_wheel(
                    PublishRequest(
                        wheel=wheel,
                        location=where.location,
                        profile=where.profile,
                        credentials=where.credentials,
                        require_smoke=False,  # the smoke stage passed on these bytes
                        retry=where.retry,
                        renumbered_dir=self.job_dir / "renumbered",
                        ledger_entry=self.entry,
                    ),
                    on_line=line,
                    sleep=time.sleep,
                )
            present = published.state == "present"
            details.update(
                wheel=published.wheel,
                sha256=published.sha256,
                url=published.url,
                index=published.index,
                unchanged=present,
                summary=f"{published.wheel} already in {where.registry} (same sha256)"
                if present
                else f"{published.wheel} uploaded to {where.registry}",
            )
        return published.path

    def _install(self, wheel: Path, where: PublishTarget) -> None:
        if self._unchanged("install", wheel, where.registry):
            self._skip("install", f"installed from {where.registry} before (ledger)")
            return
        spec = self.job.spec
        with self._stage("install", where.registry) as details:
            if where.confirm is not None:
                where.confirm()
            self._base_image()
            header = (
                f"installing {wheel.name} from {where.registry} in a {spec.target.name} container"
            )
            with self.section("install", header) as line:
                checked = run_install_check(
                    wheel,
                    spec.target,
                    spec.python,
                    self.engine,
                    location=where.location,
                    credentials=where.credentials,
                    on_line=line,
                    log_dir=self.job_dir,
                )
            details.update(sha256=checked.sha256, summary=checked.summary)
