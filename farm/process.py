"""The one place farm runs other programs.

Commands are argument lists, never shell strings. Each is logged as ``+ cmd``
with secrets masked; output can be streamed line by line to a callback and a
log file. Secret values (tokens, passwords, credentials inside URLs) are
registered once and masked everywhere this module writes.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from farm.errors import EnvironmentProblem

_SECRETS: set[str] = set()
# user:password@ in a URL; ${VAR} placeholders (pip expands them from the environment) stay.
_URL_CREDENTIALS = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?!\$\{\w+\}(:\$\{\w+\})?@)[^/@\s:]+(:[^/@\s]*)?@", re.I
)
MASK = "***"


def register_secret(value: str | None) -> None:
    """Mask ``value`` in every command line and output line from now on."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def mask(text: str) -> str:
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _URL_CREDENTIALS.sub(rf"\g<scheme>{MASK}@", text)


def command_line(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """``argv`` as a shell would need it typed, masked; ``env`` shown as assignments."""
    prefix = [f"{key}={shlex.quote(value)}" for key, value in (env or {}).items()]
    return mask(" ".join([*prefix, shlex.join(argv)]))


@dataclass(frozen=True, kw_only=True)
class Finished:
    argv: tuple[str, ...]
    returncode: int
    output: str  # stdout and stderr together, masked
    timed_out: bool = False

    def failing_line(self) -> str:
        """The last line that says ERROR (BuildKit marks failed steps so), else the last line."""
        lines = [" ".join(line.split()) for line in self.output.splitlines() if line.strip()]
        return next((line for line in reversed(lines) if "ERROR" in line), None) or (
            lines[-1] if lines else "no output"
        )


def capture(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
    cwd: Path | None = None,
    stdin: str | None = None,
) -> Finished:
    """Run a short query and keep its output (``docker version``, ``qemu --version``)."""
    try:
        result = subprocess.run(
            list(argv),
            env=_environment(env),
            cwd=cwd,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            errors="replace",
        )
    except FileNotFoundError:
        raise EnvironmentProblem(f"{argv[0]} not found") from None
    except OSError as exc:  # not executable here: permissions, another machine's binary
        raise EnvironmentProblem(f"{argv[0]} cannot run: {exc.strerror}") from None
    except subprocess.TimeoutExpired:
        return Finished(
            argv=tuple(argv),
            returncode=124,
            output=f"{argv[0]} did not answer within {timeout:.0f} s",
        )
    return Finished(
        argv=tuple(argv), returncode=result.returncode, output=mask(result.stdout + result.stderr)
    )


def stream(
    argv: Sequence[str],
    *,
    on_line: Callable[[str], None],
    log: IO[str] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
) -> Finished:
    """Run a long command, passing each masked output line to ``on_line`` and ``log``.

    The command is stopped (SIGTERM, then SIGKILL) when ``timeout`` seconds
    pass, and whenever this function is left by an exception: an interrupt
    or a signal turned into one must not leave the child running.
    """
    if log is not None:
        log.write(f"+ {command_line(argv, env)}\n")
    tail: list[str] = []
    try:
        process = subprocess.Popen(
            list(argv),
            env=_environment(env),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
        )
    except FileNotFoundError:
        raise EnvironmentProblem(f"{argv[0]} not found") from None
    except OSError as exc:
        raise EnvironmentProblem(f"{argv[0]} cannot run: {exc.strerror}") from None
    assert process.stdout is not None  # noqa: S101 - PIPE was requested
    expired = threading.Event()
    watchdog = _watchdog(process, timeout, expired)
    try:
        for raw in process.stdout:
            line = mask(raw.rstrip("\n"))
            if log is not None:
                log.write(line + "\n")
            tail = [*tail[-199:], line]
            on_line(line)
        process.wait()
    finally:
        if watchdog is not None:
            watchdog.cancel()
        stop(process)
        process.stdout.close()
    return Finished(
        argv=tuple(argv),
        returncode=process.returncode,
        output="\n".join(tail),
        timed_out=expired.is_set(),
    )


def stop(process: subprocess.Popen[Any], grace: float = 10) -> None:
    """End ``process`` if it still runs: SIGTERM, then SIGKILL after ``grace`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _watchdog(
    process: subprocess.Popen[Any], timeout: float | None, expired: threading.Event
) -> threading.Timer | None:
    if timeout is None:
        return None

    def expire() -> None:
        expired.set()
        stop(process)

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    return timer


def spawn(
    argv: Sequence[str], *, log_path: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a long-lived server detached from this process group, its output to ``log_path``."""
    with log_path.open("ab") as log:
        log.write(f"+ {command_line(argv, env)}\n".encode())
        log.flush()
        try:
            return subprocess.Popen(
                list(argv),
                env=_environment(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise EnvironmentProblem(f"{argv[0]} not found") from None


def _environment(extra: Mapping[str, str] | None) -> dict[str, str]:
    return {**os.environ, **(extra or {})}


def write_script(path: Path, commands: Sequence[tuple[Sequence[str], Mapping[str, str]]]) -> None:
    """A re-runnable shell script of ``commands`` (masked) next to a log."""
    lines = ["#!/bin/sh", "# Written by farm: the commands of this job, secrets masked.", "set -e"]
    lines += [command_line(argv, env) for argv, env in commands]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o755)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine; a zombie (ended, not yet reaped) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return True
    return state != "Z"
