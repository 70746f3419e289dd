"""The version of every JSON document farm prints (``--json``) or writes, in one table.

A document's version goes up when a field changes meaning or goes away; new
fields do not change it. The README's "JSON documents" list mirrors this table.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

SCHEMA_VERSIONS: Mapping[str, int] = MappingProxyType(
    {
        # printed by a command with --json
        "targets": 1,  # farm targets
        "recipes": 1,  # farm recipes
        "plan": 1,  # farm plan
        "doctor": 1,  # farm doctor
        "build": 2,  # farm build (and --dry-run): the pipeline's stages plus wheels and log
        "repair": 1,  # farm repair
        "lock": 1,  # farm lock
        "smoke": 2,  # farm smoke and the smoke-*.json record; 2: checks per NumPy major
        "inspect": 1,  # farm inspect
        "publish": 1,  # farm publish (and --dry-run)
        "registry-status": 1,  # farm registry status
        "registry-list": 1,  # farm registry list
        "nightly": 1,  # farm nightly
        "pipeline": 1,  # a pipeline run inside farm build and farm nightly documents
        "report": 1,  # farm report, and report.json beside the HTML page
        "error": 1,  # any command that failed before it had its own document to print
        # written to disk
        "ledger": 1,  # one file per build key in the state directory
        "record": 1,  # a stage's record in the job directory
        "provenance": 1,  # farm.provenance.json in every repaired wheel (sboms/)
    }
)


def versioned(name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` as document ``name``: its ``schema_version`` first."""
    return {"schema_version": SCHEMA_VERSIONS[name], **body}
