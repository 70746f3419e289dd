"""Errors as users see them: one plain line, the right exit code, a JSON document with --json."""

from __future__ import annotations

import errno
import json
import os
import signal
from pathlib import Path

import pytest

from farm import console
from farm.cli import catalog as catalog_commands
from farm.cli import main
from farm.errors import Interrupted, error_document, host_fault, signals_raise
from farm.settings import DEBUG_ENV


def test_an_os_error_names_what_went_wrong_and_where() -> None:
    full = OSError(errno.ENOSPC, "No space left on device")
    fault = host_fault(full, "repairing x.whl", Path("/out"))
    assert fault.exit_code == 3
    assert fault.message == "repairing x.whl: No space left on device: /out"
    assert fault.hint is not None and "disk space" in fault.hint
    blocked = FileExistsError(errno.EEXIST, "File exists", "/out/demo")
    assert host_fault(blocked, "--output-dir", "/ignored").message == (
        "--output-dir: File exists: /out/demo"
    )


def test_error_lines_are_plain_whole_text(capsys: pytest.CaptureFixture[str]) -> None:
    url = "https://gitlab.example.com/api/v4/projects/" + "1234567890" * 12 + "/packages/pypi"
    console.error(f"\x1b[31mupload refused\x1b[0m by {url}:\r\n\tHTTP 403", "check\x07 the token")
    assert capsys.readouterr().err.splitlines() == [
        f"farm: error: upload refused by {url}: HTTP 403",
        "farm: hint: check the token",
    ]


def test_error_documents_are_versioned_and_say_their_kind() -> None:
    assert error_document("bad", "fix", 2) == {
        "schema_version": 1,
        "ok": False,
        "error": {"kind": "usage", "message": "bad", "hint": "fix", "exit_code": 2},
    }
    assert error_document("stopped", None, 143)["error"]["kind"] == "interrupted"


def test_sigterm_inside_the_block_raises_and_handlers_come_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as stopped, signals_raise():
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pause()  # the handler raises before this returns
    assert stopped.value.exit_code == 143 and stopped.value.name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_unexpected_exception_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: object) -> int:
        raise RuntimeError("the unexpected")

    monkeypatch.delenv(DEBUG_ENV, raising=False)
    monkeypatch.setattr(catalog_commands, "cmd_targets", broken)
    assert main(["targets", "--json"]) == 1
    captured = capsys.readouterr()
    assert (
        captured.err.splitlines()[0] == "farm: error: internal error: RuntimeError: the unexpected"
    )
    assert "Traceback" not in captured.err
    assert json.loads(captured.out)["error"]["exit_code"] == 1
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(RuntimeError):
        main(["targets"])


def test_an_os_error_from_a_command_is_a_host_fault(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def unwritable(*args: object) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", "/srv/out/x")

    monkeypatch.setattr(catalog_commands, "cmd_targets", unwritable)
    assert main(["targets"]) == 3
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "farm: error: Permission denied: /srv/out/x"
    assert err[1].startswith("farm: hint: make it writable")
