"""``farm report``: the ledger as a matrix of package x version x target x stage.

JSON (versioned) for machines, and a static HTML page (``index.html`` next to
``report.json``) that GitLab Pages can serve as it is. Each row carries the
provenance its repaired wheel was stamped with (from the ledger); the HTML
page links it as ``provenance/<build key>.json``, written beside it.
"""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from farm import __version__
from farm.ledger import PER_REGISTRY, STAGES, Ledger, LedgerEntry, StageRecord
from farm.schemas import SCHEMA_VERSIONS

REPORT_SCHEMA_VERSION = SCHEMA_VERSIONS["report"]


def _cell(entry: LedgerEntry, stage: str) -> dict[str, Any] | None:
    recorded = entry.stages.get(stage)
    if isinstance(recorded, StageRecord):
        return {"result": recorded.result, "duration_s": recorded.duration_s, "registries": []}
    if stage not in PER_REGISTRY or not recorded:
        return None
    results = list(recorded.values())
    failed = any(result.result != "passed" for result in results)
    return {
        "result": "failed" if failed else "passed",
        "duration_s": sum(result.duration_s for result in results),
        "registries": sorted(recorded),
    }


def _human(size: int | None) -> str | None:
    if size is None:
        return None
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size = size / 1000  # type: ignore[assignment]
    return None  # pragma: no cover


def report_document(ledger: Ledger) -> dict[str, Any]:
    """The matrix; a ledger file that cannot be read is left out and named in ``warnings``."""
    scan = ledger.scan()
    rows = []
    for entry in scan.entries:
        repair = entry.stage("repair")
        wheel = entry.wheel("repair") or entry.wheel("build")
        size = repair.size if repair else None
        provenance = repair.provenance if repair else None
        rows.append(
            {
                "package": entry.package,
                "version": entry.version,
                "target": entry.target,
                "python": entry.python,
                "build_key": entry.build_key,
                "wheel": Path(wheel).name if wheel else None,
                "size": size,
                "size_human": _human(size),
                "provenance": provenance,
                "provenance_file": _provenance_file(entry.build_key) if provenance else None,
                "stages": {stage: _cell(entry, stage) for stage in STAGES},
            }
        )
    rows.sort(key=lambda row: (row["package"], row["target"], row["version"], row["python"]))
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "farm_version": __version__,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "stages": list(STAGES),
        "rows": rows,
        "warnings": [
            {
                "file": damaged.path,
                "problem": damaged.problem,
                "message": f"{damaged.message}; its row is left out of the report",
            }
            for damaged in scan.damaged
        ],
    }


def _provenance_file(build_key: str) -> str:
    return f"provenance/{build_key}.json"


def provenance_files(document: dict[str, Any]) -> dict[str, str]:
    """The provenance files the HTML page links: relative path -> JSON text."""
    return {
        row["provenance_file"]: json.dumps(row["provenance"], indent=2, sort_keys=True) + "\n"
        for row in document["rows"]
        if row["provenance_file"]
    }


def render_html(document: dict[str, Any]) -> str:
    template_text = resources.files("farm").joinpath("templates/report.html.j2").read_text()
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return environment.from_string(template_text).render(**document)


def write_site(document: dict[str, Any], directory: Path) -> Path:
    """``index.html``, ``report.json`` and the provenance files for GitLab Pages; the page."""
    directory.mkdir(parents=True, exist_ok=True)
    page = directory / "index.html"
    page.write_text(render_html(document), encoding="utf-8")
    (directory / "report.json").write_text(json.dumps(document, indent=2) + "\n")
    for relative, text in provenance_files(document).items():
        (directory / relative).parent.mkdir(exist_ok=True)
        (directory / relative).write_text(text, encoding="utf-8")
    return page
