"""The ledger: what each build key has been through, kept in the state directory.

One JSON file per build key under ``<state>/ledger/``: the package, target,
version and Python it stands for, and per stage (build, repair, inspect,
smoke, publish per registry, install per registry) the result, duration,
time and the wheel with its sha256. A rerun reads it to skip what is done.
Files are replaced atomically, so readers (``farm report``) never see half a
record. Writers hold an exclusive lock on the state directory: a second farm
run on the same directory stops at once with a message naming the first.
A file that cannot be read back as an entry (damaged, another schema) is a
:class:`~farm.errors.CorruptRecord` naming it: readers treat it as absent and say so.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from farm.errors import CorruptRecord, StateLocked
from farm.schemas import SCHEMA_VERSIONS

LEDGER_SCHEMA_VERSION = SCHEMA_VERSIONS["ledger"]
STAGES = ("build", "repair", "inspect", "smoke", "publish", "install")
PER_REGISTRY = frozenset({"publish", "install"})


class StageRecord(BaseModel):
    """One stage's result for one build key (and registry), as the ledger keeps it.

    Every field a stage may record is named here; an unknown one is an error,
    so what the runner writes and what readers expect cannot drift apart.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    result: Literal["passed", "failed"]
    duration_s: float
    finished_at: str | None = None
    error: str | None = None  # a failed stage's message
    summary: str | None = None  # one line for people
    wheel: str | None = None  # the stage's output (build, repair) or what it published
    sha256: str | None = None  # of the wheel the stage judged or produced
    size: int | None = None
    size_before: int | None = None
    log: str | None = None
    toolchain: dict[str, str] | None = None  # build: compilers' --version lines
    provenance: dict[str, Any] | None = None  # repair: the record stamped into the wheel
    content_digest: str | None = None  # repair: the files, whatever the build number
    check: str | None = None  # smoke: digest of the test's definition
    url: str | None = None  # publish: where the file is
    index: str | None = None  # publish: the simple index it is listed in

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


_NUMBER = {"duration_s"}  # JSON has one number type: an int here is a float


def parse_stage(data: Any) -> StageRecord:
    """A stage result read back from JSON; ValidationError when it is not one."""
    if isinstance(data, dict):
        data = {k: float(v) if k in _NUMBER and type(v) is int else v for k, v in data.items()}
    return StageRecord.model_validate(data)


@dataclass(kw_only=True)
class LedgerEntry:
    build_key: str
    package: str
    distribution: str
    version: str
    target: str
    python: str
    job_dir: str
    # stage -> result; publish and install: stage -> registry -> result
    stages: dict[str, Any] = field(default_factory=dict)

    def stage(self, name: str, registry: str | None = None) -> StageRecord | None:
        found = self.stages.get(name)
        if registry is not None and isinstance(found, dict):
            found = found.get(registry)
        return found if isinstance(found, StageRecord) else None

    def wheel(self, name: str) -> str | None:
        """The wheel a stage recorded (build, repair), if any."""
        found = self.stage(name)
        return found.wheel if found is not None else None

    def passed(self, name: str, registry: str | None = None) -> bool:
        found = self.stage(name, registry)
        return found is not None and found.result == "passed"

    def record(
        self,
        name: str,
        result: Literal["passed", "failed"],
        duration_s: float,
        registry: str | None = None,
        *,
        invalidate: bool = True,
        **details: Any,
    ) -> None:
        """Record a stage's result; ``invalidate`` drops the later stages' now stale results."""
        entry = StageRecord(
            result=result,
            duration_s=round(float(duration_s), 2),
            finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **details,
        )
        if name in PER_REGISTRY:
            if registry is None:
                raise ValueError(f"stage {name} is kept per registry")
            self.stages.setdefault(name, {})[registry] = entry
        else:
            self.stages[name] = entry
        # A stage that ran again makes what was done with its earlier output stale.
        for later in STAGES[STAGES.index(name) + 1 :] if invalidate else ():
            if name in PER_REGISTRY:
                self.stages.get(later, {}).pop(registry, None)
            else:
                self.stages.pop(later, None)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": LEDGER_SCHEMA_VERSION,
            "build_key": self.build_key,
            "package": self.package,
            "distribution": self.distribution,
            "version": self.version,
            "target": self.target,
            "python": self.python,
            "job_dir": self.job_dir,
            "stages": {
                stage: found.to_json()
                if isinstance(found, StageRecord)
                else {registry: record.to_json() for registry, record in found.items()}
                for stage, found in self.stages.items()
            },
        }


class Ledger:
    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "ledger"
        self.lock_path = state_dir / "farm.lock"

    def path(self, build_key: str) -> Path:
        return self.root / f"{build_key}.json"

    def get(self, build_key: str) -> LedgerEntry | None:
        """The key's entry, None when it has none; :class:`CorruptRecord` for a damaged file."""
        path = self.path(build_key)
        return read_entry(path) if path.exists() else None

    def save(self, entry: LedgerEntry) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path(entry.build_key)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(entry.to_json(), indent=2) + "\n", encoding="utf-8")
        temporary.replace(path)

    def scan(self) -> LedgerScan:
        """Every entry, and every file that could not be read as one."""
        scan = LedgerScan()
        for path in sorted(self.root.glob("*.json")):
            try:
                scan.entries.append(read_entry(path))
            except CorruptRecord as exc:
                scan.damaged.append(exc)
        return scan

    @contextlib.contextmanager
    def locked(self, command: str) -> Iterator[None]:
        """Hold the state directory for one farm run; a second one fails with who holds it."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock_path.open("a+", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another farm run"
                raise StateLocked(
                    f"the state directory {self.lock_path.parent} is in use by {holder}",
                    hint="wait for it to finish, or give this run its own FARM_STATE_DIR",
                ) from None
            handle.seek(0)
            handle.truncate()
            started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            handle.write(f"pid {os.getpid()} ({command}, since {started})\n")
            handle.flush()
            try:
                yield
            finally:
                handle.seek(0)
                handle.truncate()
                fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class LedgerScan:
    entries: list[LedgerEntry] = field(default_factory=list)
    damaged: list[CorruptRecord] = field(default_factory=list)


_TEXT_FIELDS = ("build_key", "package", "distribution", "version", "target", "python", "job_dir")


def read_entry(path: Path) -> LedgerEntry:
    """The entry a ledger file holds; :class:`CorruptRecord` naming the file and the problem."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CorruptRecord(path, f"cannot be read ({exc.strerror})") from None
    except ValueError as exc:
        raise CorruptRecord(path, f"not JSON ({exc})") from None
    problem = _entry_problem(data)
    if problem is not None:
        raise CorruptRecord(path, problem)
    fields = {name: data[name] for name in _TEXT_FIELDS}
    try:
        stages = _read_stages(data.get("stages", {}))
    except _BadStage as bad:
        raise CorruptRecord(path, str(bad)) from None
    return LedgerEntry(**fields, stages=stages)


def _entry_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return "not a JSON object"
    version = data.get("schema_version")
    if version != LEDGER_SCHEMA_VERSION:
        return f"schema_version {version!r}, but this farm reads {LEDGER_SCHEMA_VERSION}"
    for name in _TEXT_FIELDS:
        if not isinstance(data.get(name), str):
            return f"{name}: missing or not a string"
    if not isinstance(data.get("stages", {}), dict):
        return "stages: not an object"
    return None


class _BadStage(Exception):
    """A stage result that is not a :class:`StageRecord`; the message names where."""


def _read_stages(stages: dict[str, Any]) -> dict[str, Any]:
    read: dict[str, Any] = {}
    for stage, recorded in stages.items():
        if stage in PER_REGISTRY and isinstance(recorded, dict) and "result" not in recorded:
            read[stage] = {
                registry: _read_result(f"stages.{stage}.{registry}", result)
                for registry, result in recorded.items()
            }
        else:
            read[stage] = _read_result(f"stages.{stage}", recorded)
    return read


def _read_result(where: str, result: Any) -> StageRecord:
    if not isinstance(result, dict):
        raise _BadStage(f"{where}: not an object")
    try:
        return parse_stage(result)
    except ValidationError as exc:
        error = exc.errors()[0]
        field_name = ".".join(str(part) for part in error["loc"])
        found = (
            "missing"
            if error["type"] == "missing"
            else (f"{error['msg'].lower()}, found {type(error.get('input')).__name__}")
        )
        raise _BadStage(f"{where}.{field_name}: {found}") from None
