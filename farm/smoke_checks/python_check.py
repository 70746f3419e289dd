"""Smoke test of any package: import it, then run the recipe's script, inside the container.

Usage: python python_check.py MODULE SCRIPT_FILE
Prints one JSON line: {"checks": [{"name", "ok", "detail"}], "info": {...}}.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import sys
from pathlib import Path

CHECKS: list[dict[str, object]] = []


def run(module: str, script_path: str) -> None:
    try:
        imported = importlib.import_module(module)
    except Exception as exc:
        CHECKS.append({"name": "import", "ok": False, "detail": f"{type(exc).__name__}: {exc}"})
        return
    CHECKS.append({"name": "import", "ok": True, "detail": f"{module} from {imported.__file__}"})
    output = io.StringIO()
    try:
        source = Path(script_path).read_text(encoding="utf-8")
        with contextlib.redirect_stdout(output):
            exec(compile(source, script_path, "exec"), {"__name__": "__smoke__"})  # noqa: S102
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}".strip()
        CHECKS.append({"name": "script", "ok": False, "detail": detail})
        return
    CHECKS.append({"name": "script", "ok": True, "detail": output.getvalue().strip()[-300:]})


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2])
    print(json.dumps({"checks": CHECKS, "info": {"python": sys.version.split()[0]}}))
