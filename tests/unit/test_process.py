from __future__ import annotations

import io
import sys
from pathlib import Path

from farm.process import capture, command_line, mask, register_secret, stream, write_script


def test_registered_secrets_and_url_credentials_are_masked() -> None:
    register_secret("glpat-s3cr3t-value")
    assert mask("token glpat-s3cr3t-value used") == "token *** used"
    assert (
        mask("proxy http://alice:pa55@proxy.example:3128") == "proxy http://***@proxy.example:3128"
    )
    line = command_line(
        ["twine", "upload", "-p", "glpat-s3cr3t-value"], {"HTTPS_PROXY": "http://u:p@h"}
    )
    assert "s3cr3t" not in line and "u:p" not in line
    assert line.startswith("HTTPS_PROXY=http://***@h twine upload")


def test_stream_masks_output_and_logs_the_command() -> None:
    register_secret("hunter2-password")
    seen: list[str] = []
    log = io.StringIO()
    result = stream(
        [sys.executable, "-c", "print('pw=hunter2-password'); print('done')"],
        on_line=seen.append,
        log=log,
    )
    assert result.returncode == 0
    assert seen == ["pw=***", "done"]
    assert log.getvalue().startswith("+ ")
    assert "hunter2" not in log.getvalue()


def test_capture_reports_exit_status() -> None:
    assert capture([sys.executable, "-c", "import sys; sys.exit(3)"]).returncode == 3


def test_script_is_rerunnable(tmp_path: Path) -> None:
    script = tmp_path / "build.sh"
    write_script(script, [(["echo", "a b"], {"X": "1"})])
    assert script.read_text().splitlines()[-1] == "X=1 echo 'a b'"
    assert script.stat().st_mode & 0o111


def test_failing_line_prefers_buildkit_errors() -> None:
    from farm.process import Finished

    output = "#5 RUN make\n#5 ERROR: executor failed   running [make]\n\nfailed to solve\n"
    assert Finished(argv=(), returncode=1, output=output).failing_line() == (
        "#5 ERROR: executor failed running [make]"
    )
    assert Finished(argv=(), returncode=1, output="a\nlast words \n").failing_line() == "last words"
    assert Finished(argv=(), returncode=1, output="").failing_line() == "no output"


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_stream_stops_a_command_past_its_time_limit(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = (
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    )
    result = stream([sys.executable, "-c", script], on_line=lambda line: None, timeout=1)
    assert result.timed_out
    assert not _alive(int(pid_file.read_text()))


def test_stream_stops_its_command_when_left_by_an_exception(tmp_path: Path) -> None:
    import pytest

    pid_file = tmp_path / "pid"
    script = (
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
        "print('started', flush=True); time.sleep(60)"
    )

    def interrupt(line: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stream([sys.executable, "-c", script], on_line=interrupt)
    assert not _alive(int(pid_file.read_text()))
