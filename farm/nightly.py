"""The nightly: newest upstream release x the recipe's targets and Pythons, minus what is done.

For each recipe with nightly targets:

1. the newest upstream release: from PyPI's JSON API when the recipe names a
   PyPI project that follows upstream (``upstream.pypi``), else the source's
   git tags (``git ls-remote``), else the newest version the recipe lists.
   An upstream release the recipe does not list yet is reported, and the
   newest listed one not above it is built: versions enter the catalog
   through review, with their compatibility rules;
2. the matrix over the recipe's nightly targets and each target's Pythons; each cell
   builds the newest listed version, up to that release, whose rules the target meets
   (JetPack 6's Python 3.10 stops onnxruntime at 1.23.2), and says why when that is not
   the release; a cell no listed version fits is dropped with the release's broken rule;
3. a combination whose build key is recorded as published to the registry
   is skipped only when the registry, asked now, still lists that file with
   that sha256; local state alone is not trusted;
4. the rest go through the runner; a failure is recorded and the others still run.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from farm.catalog import Catalog
from farm.compat import violations
from farm.destinations import publish_target
from farm.doctor import preflight
from farm.errors import CorruptRecord, FarmError, RegistryError, UsageError
from farm.httpclient import open_url
from farm.ledger import Ledger
from farm.models import Recipe, Target
from farm.pipeline import PipelineOptions, PipelineResult, PublishTarget, Runner, Section
from farm.plan import BuildJob, plan_job
from farm.process import capture
from farm.resources import BuilderResources
from farm.runs import written_directories
from farm.schemas import SCHEMA_VERSIONS, versioned
from farm.settings import Settings
from farm.simpleindex import TransientFailure, project_files

PYPI_JSON = "https://pypi.org/pypi/{project}/json"


@dataclass(frozen=True, kw_only=True)
class Release:
    package: str
    upstream: str  # newest release upstream
    source: str  # where that was read
    chosen: str  # what the nightly builds
    note: str | None = None


@dataclass(kw_only=True)
class MatrixCell:
    package: str
    version: str
    target: str
    python: str
    state: str  # "build", "skip" or "dropped"
    reason: str
    # Why this version: the newest release, or the newest one the target's rules allow.
    chosen_because: str | None = None
    job: BuildJob | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "version": self.version,
            "target": self.target,
            "python": self.python,
            "state": self.state,
            "reason": self.reason,
            "chosen_because": self.chosen_because,
            "build_key": self.job.build_key if self.job else None,
            "strategy": self.job.strategy if self.job else None,
            "estimate": self.job.estimate.to_json() if self.job and self.job.estimate else None,
        }


def _releases_from_pypi(project: str) -> list[str]:
    url = PYPI_JSON.format(project=project)
    try:
        with open_url(url, headers={"Accept": "application/json"}) as response:
            data = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise FarmError(f"cannot read the release list of {project} from PyPI: {exc}") from None
    return [version for version, files in data.get("releases", {}).items() if files]


def _releases_from_git(url: str, ref_template: str) -> list[str]:
    result = capture(["git", "ls-remote", "--tags", "--refs", url], timeout=120)
    if result.returncode != 0:
        raise FarmError(f"cannot list the tags of {url}: {result.failing_line()}")
    pattern = re.escape(ref_template).replace(re.escape("{version}"), r"(?P<version>[^/]+)")
    return [
        match["version"]
        for line in result.output.splitlines()
        if (match := re.fullmatch(rf"[0-9a-f]+\s+refs/tags/{pattern}", line.strip()))
    ]


def newest_release(recipe: Recipe) -> Release:
    if recipe.upstream is not None and recipe.upstream.pypi:
        found, source = _releases_from_pypi(recipe.upstream.pypi), f"PyPI {recipe.upstream.pypi}"
    elif recipe.source.kind == "sdist":
        found = _releases_from_pypi(recipe.source.project)
        source = f"PyPI {recipe.source.project}"
    elif recipe.source.kind == "git":
        found = _releases_from_git(recipe.source.url, recipe.source.ref)
        source = f"git tags of {recipe.source.url}"
    else:
        found, source = list(recipe.versions), "the recipe's versions"
    upstream = _newest(found)
    if upstream is None:
        raise FarmError(f"{source} lists no release of {recipe.name}")
    known = [v for v in recipe.versions if Version(v) <= Version(upstream)]
    if not known:
        raise FarmError(f"{recipe.name}: no listed version is at or below upstream's {upstream}")
    chosen = max(known, key=Version)
    note = None
    if chosen != upstream:
        note = (
            f"{recipe.name} {upstream} is released upstream ({source}) but the recipe lists "
            f"versions up to {chosen}: add it, with its compatibility rules, to build it"
        )
    return Release(package=recipe.name, upstream=upstream, source=source, chosen=chosen, note=note)


def _newest(versions: list[str]) -> str | None:
    parsed = []
    for text in versions:
        try:
            version = Version(text)
        except InvalidVersion:
            continue
        if not version.is_prerelease and not version.is_devrelease:
            parsed.append((version, text))
    return max(parsed)[1] if parsed else None


def expand(
    catalog: Catalog,
    release: Release,
    *,
    targets: tuple[str, ...],
    resources: BuilderResources,
) -> list[MatrixCell]:
    """Every (target, python) of the recipe's nightly targets, each planned at the newest
    listed version up to the release that its rules allow, or dropped with the rule."""
    recipe = catalog.recipe(release.package).model
    cells = []
    for name in targets or recipe.nightly_targets:
        target = catalog.target(name).model
        for python in target.python:
            cell = _cell(recipe, target, python, release)
            if cell.state == "build":
                cell.job = plan_job(
                    catalog,
                    recipe.name,
                    target.name,
                    version=cell.version,
                    python=python,
                    resources=resources,
                )
            cells.append(cell)
    return cells


def _cell(recipe: Recipe, target: Target, python: str, release: Release) -> MatrixCell:
    """The newest version not above the release that the target fits, and why it was chosen."""
    newest = violations(recipe, target, release.chosen, python)
    fitting = next(
        (
            version
            for version in sorted(recipe.versions, key=Version, reverse=True)
            if Version(version) <= Version(release.chosen)
            and not violations(recipe, target, version, python)
        ),
        None,
    )
    cell = MatrixCell(
        package=recipe.name,
        version=fitting or release.chosen,
        target=target.name,
        python=python,
        state="build" if fitting else "dropped",
        reason="not built yet" if fitting else newest[0].rule,
        chosen_because="newest release" if not newest else None,
    )
    if fitting and newest:
        cell.chosen_because = f"newest for {target.name}; {newest[0].rule}"
    return cell


def mark_published(
    cells: list[MatrixCell],
    ledger: Ledger,
    registry: str,
    lookup: Callable[[str, str], dict[str, str | None]],
) -> None:
    """Mark cells whose published wheel the registry still holds, byte for byte, as skips.

    ``lookup(project, filename)`` returns the index's {filename: sha256} for the project.
    """
    for cell in cells:
        if cell.job is None:
            continue
        try:
            entry = ledger.get(cell.job.build_key)
        except CorruptRecord:
            continue  # not known to be published: its run says why and builds again
        published = entry.stage("publish", registry) if entry else None
        if entry is None or published is None or published.result != "passed":
            continue
        if published.wheel is None:
            continue  # a publish record without its file: not known to be there
        listed = lookup(entry.distribution, published.wheel)
        if listed.get(published.wheel) == published.sha256:
            cell.state, cell.reason = "skip", f"{published.wheel} is in {registry}"
        else:
            cell.reason = f"recorded as published, but {registry} does not list it now"


def index_lookup(simple_url: str, credentials: Any) -> Callable[[str, str], dict[str, str | None]]:
    """A ``lookup`` for :func:`mark_published` that asks the index, once per project."""
    cache: dict[str, dict[str, str | None]] = {}

    def lookup(project: str, filename: str) -> dict[str, str | None]:
        if project not in cache:
            try:
                files = project_files(simple_url, project, credentials)
            except TransientFailure as exc:
                raise RegistryError(
                    f"cannot ask the registry what it already holds: {exc}",
                    hint="is the registry running and reachable from here?",
                ) from None
            cache[project] = {name: remote.sha256 for name, remote in files.items()}
        return cache[project]

    return lookup


# --- the run --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class NightlyAsk:
    """What ``farm nightly`` was asked."""

    registry: str
    packages: tuple[str, ...] = ()  # default: every recipe with nightly_targets
    targets: tuple[str, ...] = ()  # default: each recipe's nightly_targets
    publish: bool = True
    build: bool = True
    force: bool = False
    dry_run: bool = False
    out_root: Path | None = None
    config_path: Path | None = None


@dataclass(frozen=True, kw_only=True)
class NightlyRun:
    cells: list[MatrixCell]
    results: list[PipelineResult]
    notes: list[str]
    duration_s: float

    @property
    def failed(self) -> int:
        return sum(1 for result in self.results if not result.ok)

    def count(self, state: str) -> int:
        return sum(1 for cell in self.cells if cell.state == state)

    def to_json(self) -> dict[str, Any]:
        return versioned(
            "nightly",
            {
                "pipeline_schema_version": SCHEMA_VERSIONS["pipeline"],
                "matrix": [cell.to_json() for cell in self.cells],
                "runs": [result.to_json() for result in self.results],
                "notes": self.notes,
                "built": sum(1 for result in self.results if result.did_work),
                "failed": self.failed,
                "duration_s": round(self.duration_s, 2),
            },
        )


@dataclass(frozen=True)
class Reporter:
    """Where a nightly run tells what it does: sections, lines, errors (farm.console's)."""

    section: Section
    info: Callable[[str], None]
    error: Callable[[str], None]


def run_nightly(
    catalog: Catalog, settings: Settings, ask: NightlyAsk, report: Reporter
) -> NightlyRun:
    """The matrix of the newest releases, minus what the registry holds, through the runner;
    a failed cell is recorded and the others still run."""
    started = time.monotonic()
    cells, notes = _matrix(catalog, settings, ask, report)
    publish_by_target = {
        cell.target: publish_target(
            settings, ask.registry, ask.config_path, catalog.target(cell.target).model
        )
        for cell in cells
        if cell.job is not None
    }
    ledger = Ledger(settings.state_dir)
    if not ask.force:
        for target_name, publish in publish_by_target.items():
            mark_published(
                [cell for cell in cells if cell.target == target_name],
                ledger,
                ask.registry,
                index_lookup(publish.location.simple_url, publish.credentials),
            )
    results = [] if ask.dry_run else _run_cells(cells, settings, ask, publish_by_target, report)
    return NightlyRun(
        cells=cells, results=results, notes=notes, duration_s=time.monotonic() - started
    )


def _matrix(
    catalog: Catalog, settings: Settings, ask: NightlyAsk, report: Reporter
) -> tuple[list[MatrixCell], list[str]]:
    packages = ask.packages or sorted(
        name for name, entry in catalog.recipes.items() if entry.model.nightly_targets
    )
    if not packages:
        raise UsageError("no recipe has nightly_targets; pass --package")
    targets = tuple(catalog.target(name).model.name for name in ask.targets)
    resources = settings.builder_resources()
    cells: list[MatrixCell] = []
    notes = []
    for package in packages:
        release = newest_release(catalog.recipe(package).model)
        if release.note:
            notes.append(release.note)
            report.info(f"note: {release.note}")
        cells += expand(catalog, release, targets=targets, resources=resources)
    return cells, notes


def _run_cells(
    cells: list[MatrixCell],
    settings: Settings,
    ask: NightlyAsk,
    publish_by_target: dict[str, PublishTarget],
    report: Reporter,
) -> list[PipelineResult]:
    todo = [(cell, cell.job) for cell in cells if cell.state == "build" and cell.job is not None]
    if not todo:
        return []
    out_root = ask.out_root or settings.output_dir
    engine = preflight(
        todo[0][1].spec.target.platform,
        settings.engine,
        settings.cache_dir,
        written_directories(settings, out_root),
        report.info,
    )
    ledger = Ledger(settings.state_dir)
    results = []
    with ledger.locked("farm nightly"):
        for number, (cell, job) in enumerate(todo, 1):
            report.info(
                f"[{number}/{len(todo)}] {cell.package} {cell.version} for {cell.target} "
                f"(python {cell.python})"
            )
            options = PipelineOptions(
                out_root=out_root,
                cache_dir=settings.cache_dir,
                mirrors=settings.mirrors,
                force=ask.force,
                publish=publish_by_target[cell.target] if ask.publish else None,
                build=ask.build,
            )
            result = Runner(job, engine, ledger, options, report.section, report.info).run()
            if result.error is not None:
                report.error(
                    f"{cell.package} {cell.version} for {cell.target}: {result.error.message}"
                )
            results.append(result)
    return results
