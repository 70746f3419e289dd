"""Developer and CI sessions: `nox -s tests`, `nox -s lint`, `nox -s types`."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "types", "tests"]
nox.options.error_on_missing_interpreters = True


@nox.session
def tests(session: nox.Session) -> None:
    """Unit and integration tests (integration needs the host set up: see README)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def unit(session: nox.Session) -> None:
    """Unit tests only: no docker, no QEMU, no servers."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "not integration", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def types(session: nox.Session) -> None:
    # tomli: mypy checks as Python 3.10, where the config reader imports it.
    session.install("-e", ".", "mypy>=1.10", "types-PyYAML", "tomli")
    session.run("mypy")
