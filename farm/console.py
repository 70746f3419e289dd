"""All human-facing output goes through here; machine output is plain JSON on stdout.

Results (tables, Dockerfiles, JSON) go to stdout, messages to stderr, so
``farm plan ... --json | jq`` and ``farm render ... > Dockerfile`` work.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

# Piped output is read by people in CI logs: do not squeeze tables into 80 columns.
_PIPED_WIDTH = None if sys.stdout.isatty() else 200
stdout = Console(soft_wrap=True, highlight=False, width=_PIPED_WIDTH)
stderr = Console(stderr=True, soft_wrap=True, highlight=False)


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False) + "\n")


def print_text(text: str) -> None:
    sys.stdout.write(text)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    table = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    stdout.print(table)


def error(message: str, hint: str | None = None) -> None:
    stderr.print(f"[bold red]farm: error:[/] {escape(message)}")
    if hint:
        stderr.print(f"[yellow]farm: hint:[/] {escape(hint)}")
