"""All human-facing output goes through here; machine output is plain JSON on stdout.

Results (tables, Dockerfiles, JSON) go to stdout, messages to stderr, so
``farm plan ... --json | jq`` and ``farm render ... > Dockerfile`` work.
Everything written here passes :func:`farm.process.mask`: a registered secret
never reaches a terminal or a CI log, whichever code path produced the line.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from farm.process import mask

# Piped output is read by people in CI logs: do not squeeze tables into 80 columns.
_PIPED_WIDTH = None if sys.stdout.isatty() else 200
stdout = Console(soft_wrap=True, highlight=False, width=_PIPED_WIDTH)
stderr = Console(stderr=True, soft_wrap=True, highlight=False)


_printed_json = False
# Terminal control sequences and other control characters: an error line is plain text.
# Terminal escape sequences: CSI (colours, cursor) and OSC (titles, links).
_ESCAPE = r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
_ESCAPES = re.compile(_ESCAPE)
_CONTROL = re.compile(_ESCAPE + r"|[\x00-\x1f\x7f]")


def without_escapes(text: str) -> str:
    """``text`` without terminal escape sequences; its lines kept."""
    return _ESCAPES.sub("", text)


def print_json(document: Any) -> None:
    global _printed_json
    _printed_json = True
    sys.stdout.write(mask(json.dumps(document, indent=2, sort_keys=False)) + "\n")


def begin_command() -> None:
    """Forget what an earlier command in this process printed or was stopped in."""
    global _printed_json
    _printed_json = False
    _STOPPED_IN.clear()


def printed_json() -> bool:
    """Whether this command already wrote its JSON document to stdout."""
    return _printed_json


def print_text(text: str) -> None:
    sys.stdout.write(mask(text))


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    table = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    stdout.print(table)


_MARKS = {
    "ok": "[green]ok  [/]",
    "warn": "[yellow]warn[/]",
    "fail": "[bold red]FAIL[/]",
    "skip": "[dim]skip[/]",
}


def print_check(status: str, name: str, detail: str, fix: str | None) -> None:
    stdout.print(f"{_MARKS.get(status, status)} {escape(name)}: {escape(detail)}")
    if fix and status != "ok":
        stdout.print(f"     fix: {escape(fix)}")


def plain(text: str) -> str:
    """``text`` on one line without terminal escapes or control characters, masked."""
    return " ".join(_CONTROL.sub(" ", mask(text)).split())


def error(message: str, hint: str | None = None) -> None:
    """``farm: error: ...`` and maybe ``farm: hint: ...``: plain, whole lines on stderr."""
    sys.stderr.write(f"farm: error: {plain(message)}\n")
    if hint:
        sys.stderr.write(f"farm: hint: {plain(hint)}\n")
    sys.stderr.flush()


def warn(message: str) -> None:
    sys.stderr.write(f"farm: warning: {plain(message)}\n")


def info(message: str) -> None:
    stderr.print(escape(mask(message)))


_ACTIVE: list[str] = []  # headers of the sections now open, outermost first
_STOPPED_IN: list[str] = []  # the innermost section an interrupt or signal left


def activity() -> str | None:
    """What the farm was doing when a signal stopped it, else what it is doing now."""
    if _STOPPED_IN:
        return _STOPPED_IN[0]
    return _ACTIVE[-1] if _ACTIVE else None


@contextlib.contextmanager
def section(name: str, header: str) -> Iterator[Callable[[str], None]]:
    """A block of long-running output; yields the callback that prints its lines.

    In GitLab CI the block is a collapsible log section; on a terminal a
    spinner shows the latest line; elsewhere every line is printed plainly.
    """
    _ACTIVE.append(header)
    try:
        with _section_output(name, header) as on_line:
            yield on_line
    except BaseException as exc:
        if not isinstance(exc, Exception) and not _STOPPED_IN:  # a signal or an interrupt
            _STOPPED_IN.append(header)
        raise
    finally:
        _ACTIVE.pop()


@contextlib.contextmanager
def _section_output(name: str, header: str) -> Iterator[Callable[[str], None]]:
    if os.environ.get("GITLAB_CI"):
        slug = re.sub(r"[^a-z0-9_]+", "_", name.lower())
        sys.stderr.write(
            f"\x1b[0Ksection_start:{int(time.time())}:{slug}[collapsed=true]\r\x1b[0K{header}\n"
        )
        try:
            yield _plain_line
        finally:
            sys.stderr.write(f"\x1b[0Ksection_end:{int(time.time())}:{slug}\r\x1b[0K\n")
        return
    info(header)
    if not stderr.is_terminal:
        yield _plain_line
        return
    with stderr.status(escape(header)) as status:
        yield lambda line: status.update(escape(mask(f"{header}: {line[:150]}")))


def _plain_line(line: str) -> None:
    sys.stderr.write(f"  | {mask(line)}\n")
