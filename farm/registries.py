"""Registry profiles: where wheels are published, and how to find them again.

Profiles are data, validated like the catalog. They come from the first of
``--config FILE``, ``$FARM_CONFIG``, ``./farm.toml`` or ``[tool.farm]`` in
``./pyproject.toml``; a ``local`` profile (the embedded pypiserver that
``farm registry serve`` runs) always exists unless a file redefines it::

    [registries.gitlab]
    kind = "gitlab"
    url = "https://gitlab.example.com"
    project = "jetson/wheels"          # id or path; may be a template: "jetson/{target}"
    group = "jetson"                   # optional: the group-level read URL

    [registries.team]
    kind = "devpi"
    url = "http://devpi.internal:3141"
    user = "farm"
    index = "{target}"                 # an index per target: farm/jetpack6, ...
    bases = ["root/pypi"]              # one --index-url serves public dependencies too

Each profile resolves, for a target, to an :class:`IndexLocation`: the upload
URL twine posts to and the PEP 503 simple URL installers read. Templates may
use ``{target}``, ``{jetpack}``, ``{l4t}``, ``{cuda}``, ``{python}``; any
string may name environment variables as ``${NAME}`` (``url =
"${CI_SERVER_URL}"`` in a GitLab pipeline). Credentials have no setting: they
are never written in the file.
"""

from __future__ import annotations

import dataclasses
import re
import string
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import Field, StringConstraints, TypeAdapter, ValidationError

from farm.errors import CatalogError, RegistryUnavailable, UnknownNameError, UsageError
from farm.models import FrozenModel, Name, Target

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

HttpUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s/@]+(:\d+)?(/\S*)?$")]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
PLACEHOLDERS = frozenset({"target", "jetpack", "l4t", "cuda", "python"})
GIB = 1024**3


class _Profile(FrozenModel):
    """What every kind shares: credentials by reference, never by value."""

    # Environment variables holding the credentials for this profile; when unset
    # the usual sources apply (see farm.credentials).
    username_env: EnvName | None = None
    password_env: EnvName | None = None
    # Upload refused before it starts above this size (bytes); None: no farm-side limit.
    max_file_size: int | None = Field(default=None, gt=0)
    # Credentials over plain http to another machine are refused unless this is set (then
    # every command that sends them warns).
    allow_insecure_http: bool = False


class GitlabRegistry(_Profile):
    kind: Literal["gitlab"]
    url: HttpUrl
    project: str = Field(min_length=1)
    group: str | None = None
    # GitLab's instance default for PyPI packages is 5 GB (application setting
    # pypi_max_file_size); an instance may set it lower.
    max_file_size: int | None = Field(default=5 * 10**9, gt=0)


class DevpiRegistry(_Profile):
    kind: Literal["devpi"]
    url: HttpUrl
    user: Name
    index: str = Field(default="{target}", min_length=1)
    bases: tuple[str, ...] = ()
    # devpi-server refuses request bodies over 1 GiB unless started with a larger
    # --max-request-body-size; onnxruntime GPU wheels can be bigger.
    max_file_size: int | None = Field(default=GIB, gt=0)


class PypiserverRegistry(_Profile):
    kind: Literal["pypiserver"]
    url: HttpUrl


class GenericRegistry(_Profile):
    kind: Literal["generic"]
    upload_url: HttpUrl
    simple_url: HttpUrl


Profile = Annotated[
    GitlabRegistry | DevpiRegistry | PypiserverRegistry | GenericRegistry,
    Field(discriminator="kind"),
]
_PROFILES: TypeAdapter[dict[str, Profile]] = TypeAdapter(dict[Name, Profile])


@dataclass(frozen=True, kw_only=True)
class IndexLocation:
    """One index of a registry: where twine uploads and where installers read."""

    registry: str
    upload_url: str
    simple_url: str
    read_url: str  # what users put in --index-url (a GitLab group URL when configured)
    kind: str


@dataclass(frozen=True, kw_only=True)
class RegistryConfig:
    profiles: dict[str, Profile]
    source: str  # the file the profiles came from, for error messages
    # Profiles that exist but cannot be used now, with the reason (the local registry, stopped).
    unavailable: dict[str, str] = dataclasses.field(default_factory=dict)

    def profile(self, name: str) -> Profile:
        if name in self.profiles:
            return self.profiles[name]
        if name in self.unavailable:
            raise RegistryUnavailable(self.unavailable[name])
        known = ", ".join(sorted({*self.profiles, *self.unavailable})) or "none"
        raise UnknownNameError(
            f"unknown registry {name!r} (configured in {self.source}: {known})",
            hint="define it under [registries.NAME] in farm.toml or [tool.farm] of "
            "pyproject.toml, or pass --config",
        )


def load_config(path: Path | None, *, environ: dict[str, str], cwd: Path) -> RegistryConfig:
    """The registry profiles from the first configuration source that exists."""
    if path is not None:  # --config FILE, else FARM_CONFIG (Settings.registry_config)
        return _from_file(path, environ) or RegistryConfig(profiles={}, source=str(path))
    for candidate in (cwd / "farm.toml", cwd / "pyproject.toml"):
        if candidate.is_file() and (config := _from_file(candidate, environ)):
            return config
    return RegistryConfig(profiles={}, source="built-in defaults")


def _from_file(path: Path, environ: dict[str, str]) -> RegistryConfig | None:
    data = _read_toml(path)
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("farm")
        if data is None:
            return None
    return _parse(_expand_environment(data, environ, path), path)


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_environment(data: Any, environ: dict[str, str], path: Path, where: str = "") -> Any:
    """``${NAME}`` in a string setting is the environment's NAME (GitLab CI's CI_PROJECT_ID...)."""
    if isinstance(data, dict):
        return {
            key: _expand_environment(value, environ, path, f"{where}.{key}".lstrip("."))
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [_expand_environment(value, environ, path, where) for value in data]
    if not isinstance(data, str):
        return data

    def value(match: re.Match[str]) -> str:
        if match[1] not in environ:
            raise CatalogError(path, where, f"${{{match[1]}}} is not set in the environment")
        return environ[match[1]]

    return _VARIABLE.sub(value, data)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data: dict[str, Any] = tomllib.load(handle)
            return data
    except FileNotFoundError:
        raise UsageError(f"{path}: configuration file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(path, None, f"not valid TOML ({exc})") from None


def _parse(section: dict[str, Any], path: Path) -> RegistryConfig:
    unknown = sorted(set(section) - {"registries"})
    if unknown:
        raise CatalogError(path, unknown[0], "unknown setting (expected: registries)")
    try:
        profiles = _PROFILES.validate_python(section.get("registries", {}))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = "registries." + ".".join(str(part) for part in error["loc"])
        raise CatalogError(path, where, error["msg"]) from None
    for name, profile in profiles.items():
        for field, template in _templates(profile).items():
            bad = _placeholders(template) - PLACEHOLDERS
            if bad:
                raise CatalogError(
                    path,
                    f"registries.{name}.{field}",
                    f"unknown placeholder {{{sorted(bad)[0]}}} "
                    f"(known: {', '.join(sorted(PLACEHOLDERS))})",
                )
    return RegistryConfig(profiles=profiles, source=str(path))


def _templates(profile: Profile) -> dict[str, str]:
    if isinstance(profile, GitlabRegistry):
        return {"project": profile.project, **({"group": profile.group} if profile.group else {})}
    if isinstance(profile, DevpiRegistry):
        return {"index": profile.index}
    if isinstance(profile, GenericRegistry):
        return {"upload_url": profile.upload_url, "simple_url": profile.simple_url}
    return {}


def _placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}


def routes_by_target(profile: Profile) -> bool:
    """Whether each target gets its own index (a template names the target's stack)."""
    return any(_placeholders(template) for template in _templates(profile).values())


def expand(template: str, target: Target | None, registry: str) -> str:
    """Fill a routing template from the target's data; name what is missing."""
    needed = _placeholders(template)
    if not needed:
        return template
    if target is None:
        raise UsageError(
            f"registry {registry} routes wheels by target ({template!r}): name the target",
            hint="pass --target, or publish wheels whose build record names it",
        )
    values = {
        "target": target.name,
        "jetpack": target.jetpack,
        "l4t": target.l4t,
        "cuda": target.cuda.version if target.cuda else None,
        "python": target.default_python,
    }
    missing = sorted(name for name in needed if values.get(name) is None)
    if missing:
        raise UsageError(
            f"registry {registry} routes by {{{missing[0]}}}, which target {target.name} lacks"
        )
    return template.format(**values)


def locate(name: str, profile: Profile, target: Target | None) -> IndexLocation:
    """The index of ``profile`` that wheels for ``target`` go to."""
    if isinstance(profile, GitlabRegistry):
        return _gitlab_location(name, profile, target)
    if isinstance(profile, DevpiRegistry):
        index = f"{profile.url.rstrip('/')}/{profile.user}/{expand(profile.index, target, name)}"
        return IndexLocation(
            registry=name,
            upload_url=f"{index}/",
            simple_url=f"{index}/+simple/",
            read_url=f"{index}/+simple/",
            kind=profile.kind,
        )
    if isinstance(profile, PypiserverRegistry):
        base = profile.url.rstrip("/")
        return IndexLocation(
            registry=name,
            upload_url=f"{base}/",
            simple_url=f"{base}/simple/",
            read_url=f"{base}/simple/",
            kind=profile.kind,
        )
    upload = expand(profile.upload_url, target, name)
    simple = expand(profile.simple_url, target, name)
    return IndexLocation(
        registry=name, upload_url=upload, simple_url=simple, read_url=simple, kind=profile.kind
    )


def _gitlab_location(name: str, profile: GitlabRegistry, target: Target | None) -> IndexLocation:
    # lib/api/pypi_packages.rb: uploads go to a project; a group endpoint only reads.
    api = f"{profile.url.rstrip('/')}/api/v4"
    project = gitlab_id(expand(profile.project, target, name))
    simple = f"{api}/projects/{project}/packages/pypi/simple/"
    read = simple
    if profile.group:
        group = gitlab_id(expand(profile.group, target, name))
        read = f"{api}/groups/{group}/-/packages/pypi/simple/"
    return IndexLocation(
        registry=name,
        upload_url=f"{api}/projects/{project}/packages/pypi",
        simple_url=simple,
        read_url=read,
        kind=profile.kind,
    )


def gitlab_id(project: str) -> str:
    """A numeric id as is; a ``group/project`` path URL-encoded, as GitLab's API wants it."""
    return project if re.fullmatch(r"\d+", project) else quote(project, safe="")
