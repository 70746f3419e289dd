"""Result records written next to each stage's output: what ran, on what, result, duration."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from farm import __version__
from farm.schemas import SCHEMA_VERSIONS

RECORD_SCHEMA_VERSION = SCHEMA_VERSIONS["record"]


def write_record(
    path: Path, stage: str, result: str, duration_s: float, details: dict[str, Any]
) -> None:
    """Write atomically: a reader never sees half a record."""
    record = {
        "schema_version": RECORD_SCHEMA_VERSION,
        "stage": stage,
        "result": result,
        "farm_version": __version__,
        "duration_s": round(duration_s, 1),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **details,
    }
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)
