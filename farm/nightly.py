"""The nightly: newest upstream release x the recipe's targets and Pythons, minus what is done.

For each recipe with nightly targets:

1. the newest upstream release: from PyPI's JSON API when the recipe names a
   PyPI project that follows upstream (``upstream.pypi``), else the source's
   git tags (``git ls-remote``), else the newest version the recipe lists.
   An upstream release the recipe does not list yet is reported, and the
   newest listed one not above it is built: versions enter the catalog
   through review, with their compatibility rules;
2. the matrix over the recipe's nightly targets and each target's Pythons;
   combinations the rules forbid are dropped with the rule's reason;
3. a combination whose build key is recorded as published to the registry
   is skipped only when the registry, asked now, still lists that file with
   that sha256; local state alone is not trusted;
4. the rest go through the runner; a failure is recorded and the others still run.
"""

from __future__ import annotations

import json
import re
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from packaging.version import InvalidVersion, Version

from farm.catalog import Catalog
from farm.compat import violations
from farm.errors import CorruptRecord, FarmError, RegistryError
from farm.ledger import Ledger
from farm.models import Recipe
from farm.network import ca_bundle
from farm.plan import BuildJob, plan_job
from farm.process import capture
from farm.resources import BuilderResources
from farm.simpleindex import TransientFailure, project_files

NIGHTLY_SCHEMA_VERSION = 1
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
    job: BuildJob | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "version": self.version,
            "target": self.target,
            "python": self.python,
            "state": self.state,
            "reason": self.reason,
            "build_key": self.job.build_key if self.job else None,
        }


def _releases_from_pypi(project: str) -> list[str]:
    request = urllib.request.Request(  # noqa: S310 - a fixed https URL
        PYPI_JSON.format(project=project), headers={"Accept": "application/json"}
    )
    context = ssl.create_default_context(cafile=ca_bundle())
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:  # noqa: S310
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
    """Every (target, python) of the recipe's nightly targets, planned or dropped with a reason."""
    entry = catalog.recipe(release.package)
    recipe = entry.model
    names = targets or recipe.nightly_targets
    cells = []
    for name in names:
        target = catalog.target(name).model
        for python in target.python:
            broken = violations(recipe, target, release.chosen, python)
            cell = MatrixCell(
                package=recipe.name,
                version=release.chosen,
                target=target.name,
                python=python,
                state="dropped" if broken else "build",
                reason=broken[0].rule if broken else "not built yet",
            )
            if not broken:
                cell.job = plan_job(
                    catalog,
                    recipe.name,
                    target.name,
                    version=release.chosen,
                    python=python,
                    resources=resources,
                )
            cells.append(cell)
    return cells


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
