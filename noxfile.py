"""Developer and CI sessions: `nox -s tests`, `nox -s lint`, `nox -s types`.

The integration tests run once per BuildKit client farm supports: `tests` with docker buildx
(the plugin scripts/host-setup.sh installs), `tests_classic` with Debian's docker client and
DOCKER_BUILDKIT=1. test_doctor checks each run used the client it asked for.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "types", "tests", "tests_classic"]
CLASSIC_CLIENT = "/usr/bin/docker"  # Debian 12's docker.io 20.10
nox.options.error_on_missing_interpreters = True


@nox.session
def tests(session: nox.Session) -> None:
    """Unit and integration tests, BuildKit through buildx (integration needs the host set
    up: see README)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs, env={"FARM_ENGINE": "buildx"})


@nox.session
def tests_classic(session: nox.Session) -> None:
    """The integration tests again, BuildKit through the classic client (DOCKER_BUILDKIT=1)."""
    session.install("-e", ".[test]")
    env = {"FARM_ENGINE": "classic", "FARM_DOCKER": CLASSIC_CLIENT}
    session.run("pytest", "-m", "integration", *session.posargs, env=env)


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
