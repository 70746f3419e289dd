"""The farm's one exception tree.

Every failure a user can cause or meet is a :class:`FarmError`: it carries a
one-line message, an optional hint on how to fix it and the exit code the
command line returns. Only :func:`farm.cli.main` catches them.

Every error class a user can meet is defined here, and exit codes exist only
here. Three exceptions elsewhere never reach a user: the publisher's
``TransientFailure`` (a retry signal), the runner's ``_Failed`` (ends a job
whose failure was recorded) and the models' ``FieldRuleError`` (a pydantic
validator's message, turned into a :class:`CatalogError`).
"""

from __future__ import annotations

import contextlib
import errno
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from farm.schemas import SCHEMA_VERSIONS

# Exit codes, in the spirit of sysexits(3) but few enough to remember.
EXIT_OK = 0
EXIT_FAILURE = 1  # a stage ran and failed
EXIT_USAGE = 2  # bad input: arguments, recipes, targets, impossible combinations
EXIT_ENVIRONMENT = 3  # the host lacks something: docker, QEMU, disk


def signal_exit_code(signum: int) -> int:
    """128 + N: stopped by signal N (130 SIGINT, 143 SIGTERM), as shells report it."""
    return 128 + signum


ERROR_SCHEMA_VERSION = SCHEMA_VERSIONS["error"]
_KINDS = {EXIT_FAILURE: "failure", EXIT_USAGE: "usage", EXIT_ENVIRONMENT: "environment"}


class FarmError(Exception):
    """Base of all errors the farm reports to its user."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(FarmError):
    """The command line asked for something that cannot be done."""

    exit_code = EXIT_USAGE


class CatalogError(UsageError):
    """A recipe or target file is malformed or breaks a rule.

    The message always starts with the file, then the field, then the rule.
    """

    def __init__(
        self, path: Path | str, field: str | None, rule: str, *, hint: str | None = None
    ) -> None:
        where = f"{path}: {field}" if field else str(path)
        super().__init__(f"{where}: {rule}", hint=hint)
        self.path = str(path)
        self.field = field
        self.rule = rule


class UnknownNameError(UsageError):
    """A target or package name that the catalog does not hold."""


class IncompatibleError(UsageError):
    """A version, target and Python that cannot go together."""


class CorruptRecord(FarmError):
    """A file the farm wrote earlier (a ledger file) cannot be read back as one.

    Readers treat it as absent and warn with the message, which starts with the file.
    """

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


class EnvironmentProblem(FarmError):
    """The host cannot run what was asked (missing tool, daemon down)."""

    exit_code = EXIT_ENVIRONMENT


# --- failures of a stage, by stage ---------------------------------------------


class BuildFailed(FarmError):
    """BuildKit ran and a step failed."""


class RepairFailed(FarmError):
    """auditwheel could not repair the wheel, or the result breaks the target's rules."""


class SmokeFailed(FarmError):
    """The wheel was installed and a check failed."""


class InstallFailed(FarmError):
    """The wheel could not be installed back from the index, or came back different."""


class RegistryError(FarmError):
    """The registry answered, and the answer means publishing cannot go on."""


class CredentialsRejected(RegistryError):
    """401 or 403: the credentials are wrong or lack the right to do this."""


class FileExists(RegistryError):
    """400 or 409 to an upload: usually the file name is taken; the index tells for sure."""


class PublishRefused(FarmError):
    """The wheel must not be published as it is (no smoke pass, name taken by other bytes)."""


class StateLocked(EnvironmentProblem):
    """Another farm run holds the state directory."""


class StackError(UsageError):
    """A stack's packages are wrong: a checksum that does not match, a piece missing."""


class TimedOut(FarmError):
    """A command ran past its time limit and was stopped, with its container."""


class Interrupted(BaseException):
    """SIGTERM or SIGHUP arrived (SIGINT raises KeyboardInterrupt).

    A BaseException like KeyboardInterrupt, so that no ``except Exception``
    swallows it while the stack unwinds through the context managers that
    stop child processes, remove containers and release the state lock.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return signal_exit_code(self.signum)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


# What the host can do about an OSError, by errno.
_OS_HINTS = {
    errno.ENOSPC: "free disk space there (`docker builder prune` frees BuildKit cache)",
    errno.EDQUOT: "free disk space there or raise the quota",
    errno.EACCES: "make it writable by this user, or choose another directory",
    errno.EPERM: "make it writable by this user, or choose another directory",
    errno.EROFS: "choose a directory on a writable file system",
    errno.ENOTDIR: "a file stands where a directory is needed: move it or choose another path",
    errno.EEXIST: "a file stands where a directory is needed: move it or choose another path",
    errno.EISDIR: "a directory stands where a file is needed: move it or choose another path",
}


def host_fault(
    exc: OSError, doing: str | None = None, where: Path | str | None = None
) -> EnvironmentProblem:
    """An OSError as one line: what farm was doing, what went wrong, and the path (the
    error's own, else ``where``)."""
    path = exc.filename or where
    reason = exc.strerror or str(exc)
    parts = [part for part in (doing, reason, str(path) if path else None) if part]
    if exc.filename2:
        parts[-1] += f" -> {exc.filename2}"
    return EnvironmentProblem(": ".join(parts), hint=_OS_HINTS.get(exc.errno or 0))


@contextlib.contextmanager
def host_faults(doing: str, where: Path | str) -> Iterator[None]:
    """Within the block, an OSError becomes :func:`host_fault` naming ``doing`` and ``where``."""
    try:
        yield
    except OSError as exc:
        raise host_fault(exc, doing, where) from None


def error_document(message: str, hint: str | None, exit_code: int) -> dict[str, Any]:
    """What ``--json`` prints when a command fails before it has a result to print."""
    kind = _KINDS.get(exit_code, "interrupted" if exit_code > 128 else "failure")
    return {
        "schema_version": ERROR_SCHEMA_VERSION,
        "ok": False,
        "error": {"kind": kind, "message": message, "hint": hint, "exit_code": exit_code},
    }


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Interrupted` in the main thread.

    The first stop signal (SIGINT included) wins: later ones are ignored while
    the stack unwinds, so a second Ctrl-C or a CI runner's repeated SIGTERM
    cannot cut the clean-up short. The previous handlers come back afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    watched = (signal.SIGINT, *_STOP_SIGNALS)
    previous = {signum: signal.getsignal(signum) for signum in watched}

    def stop(signum: int, frame: FrameType | None) -> None:
        for other in watched:
            signal.signal(other, signal.SIG_IGN)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Interrupted(signum)

    for signum in watched:
        signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


class RegistryUnavailable(EnvironmentProblem):
    """A registry the user named cannot be reached as configured (the local one is stopped).

    Publishing never guesses another address: credentials go only where the
    profile or the running server's own record says.
    """


class WheelRejected(UsageError):
    """The file handed over is not a wheel fit to publish; nothing was sent anywhere.

    The message is ``<wheel>: <rule>: <detail>``.
    """

    def __init__(self, wheel: str, rule: str, detail: str) -> None:
        super().__init__(f"{wheel}: {rule}: {detail}")
        self.wheel = wheel
        self.rule = rule
        self.detail = detail
