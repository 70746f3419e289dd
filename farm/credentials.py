"""Upload credentials for a registry, found where twine and pip users keep them.

Never from the command line: a typed password ends up in shell history and
CI logs. The first source that has them wins:

1. the profile's own ``username_env`` / ``password_env`` variables;
2. for the embedded ``local`` registry, the credentials ``farm registry serve``
   generated (a 0600 file in the state directory);
3. ``TWINE_USERNAME`` / ``TWINE_PASSWORD``;
4. on GitLab: a deploy token (``CI_DEPLOY_USER`` / ``CI_DEPLOY_PASSWORD``),
   then the job token (``gitlab-ci-token`` / ``CI_JOB_TOKEN``);
5. a ``.pypirc`` section named like the registry (``$PYPIRC`` or ``~/.pypirc``);
6. a ``.netrc`` entry for the upload host (``$NETRC`` or ``~/.netrc``).

With none, twine falls back to keyring, as it always does. Every password
found is registered with :mod:`farm.process` so no log line can show it.
"""

from __future__ import annotations

import configparser
import netrc
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from farm.errors import UsageError
from farm.process import register_secret
from farm.registries import GitlabRegistry, Profile

# A username for token-only sources; PyPI's convention, accepted by GitLab for tokens.
TOKEN_USER = "__token__"  # noqa: S105 - a user name, not a secret


@dataclass(frozen=True, kw_only=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    source: str  # where they came from, safe to print

    def environment(self) -> dict[str, str]:
        """How twine is given them: environment, never argv."""
        return {"TWINE_USERNAME": self.username, "TWINE_PASSWORD": self.password}


def resolve(
    name: str,
    profile: Profile,
    upload_url: str,
    *,
    environ: Mapping[str, str],
    home: Path,
    stored: Credentials | None = None,
) -> Credentials | None:
    found = (
        _from_profile(name, profile, environ)
        or stored
        or _pair(environ, "TWINE_USERNAME", "TWINE_PASSWORD")
        or (_gitlab(environ) if isinstance(profile, GitlabRegistry) else None)
        or _from_pypirc(name, environ, home)
        or _from_netrc(upload_url, environ, home)
    )
    if found is not None:
        register_secret(found.password)
    return found


def _from_profile(name: str, profile: Profile, environ: Mapping[str, str]) -> Credentials | None:
    if profile.password_env is None:
        return None
    password = environ.get(profile.password_env)
    if not password:
        raise UsageError(
            f"registry {name}: password_env names {profile.password_env}, which is not set",
            hint=f"export {profile.password_env}, or drop password_env from the profile",
        )
    username = environ.get(profile.username_env or "", "") or TOKEN_USER
    return Credentials(username=username, password=password, source=profile.password_env)


def _pair(environ: Mapping[str, str], user_var: str, password_var: str) -> Credentials | None:
    password = environ.get(password_var)
    if not password:
        return None
    username = environ.get(user_var) or TOKEN_USER
    return Credentials(username=username, password=password, source=password_var)


def _gitlab(environ: Mapping[str, str]) -> Credentials | None:
    # GitLab CI: a project deploy token named gitlab-deploy-token is exposed as
    # CI_DEPLOY_USER/CI_DEPLOY_PASSWORD; CI_JOB_TOKEN authenticates as gitlab-ci-token.
    deploy = _pair(environ, "CI_DEPLOY_USER", "CI_DEPLOY_PASSWORD")
    if deploy is not None:
        return deploy
    job_token = environ.get("CI_JOB_TOKEN")
    if job_token:
        return Credentials(username="gitlab-ci-token", password=job_token, source="CI_JOB_TOKEN")
    return None


def _from_pypirc(name: str, environ: Mapping[str, str], home: Path) -> Credentials | None:
    path = Path(environ.get("PYPIRC") or home / ".pypirc")
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as exc:
        raise UsageError(f"{path}: unreadable ({type(exc).__name__})") from None
    if not parser.has_option(name, "password"):
        return None
    username = parser.get(name, "username", fallback=TOKEN_USER)
    return Credentials(
        username=username, password=parser.get(name, "password"), source=f"{path} [{name}]"
    )


def _from_netrc(upload_url: str, environ: Mapping[str, str], home: Path) -> Credentials | None:
    path = Path(environ.get("NETRC") or home / ".netrc")
    host = urlsplit(upload_url).hostname
    if not path.is_file() or host is None:
        return None
    try:
        entry = netrc.netrc(str(path)).authenticators(host)
    except (netrc.NetrcParseError, OSError) as exc:
        raise UsageError(f"{path}: unreadable ({type(exc).__name__})") from None
    if entry is None or not entry[2]:
        return None
    return Credentials(username=entry[0] or TOKEN_USER, password=entry[2], source=f"{path} {host}")
