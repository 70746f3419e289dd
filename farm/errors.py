"""The farm's one exception tree.

Every failure a user can cause or meet is a :class:`FarmError`: it carries a
one-line message, an optional hint on how to fix it and the exit code the
command line returns. Only :func:`farm.cli.main` catches them.
"""

from __future__ import annotations

from pathlib import Path

# Exit codes, in the spirit of sysexits(3) but few enough to remember.
EXIT_FAILURE = 1  # a stage ran and failed
EXIT_USAGE = 2  # bad input: arguments, recipes, targets, impossible combinations
EXIT_ENVIRONMENT = 3  # the host lacks something: docker, QEMU, disk


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


class EnvironmentProblem(FarmError):
    """The host cannot run what was asked (missing tool, daemon down)."""

    exit_code = EXIT_ENVIRONMENT


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
