"""The snippet a project pastes to install the farm's wheels: uv, pip or poetry.

Rules every snippet keeps:

* the private index only serves the Jetson platform (aarch64 Linux); other
  platforms keep PyPI's package of the same name, through per-platform
  markers (uv sources, poetry multiple constraints, pip environment markers);
* the index is *explicit* (uv, poetry) or *the* index (pip ``--index-url``),
  never an extra index: ``--extra-index-url`` lets a public package with the
  same name win, which is dependency confusion;
* credentials appear as environment placeholders named the way each tool
  reads them, never as values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from farm.httpclient import plain_http_host
from farm.registries import IndexLocation

Tool = Literal["uv", "pip", "poetry"]
JETSON_MARKER = "platform_machine == 'aarch64' and sys_platform == 'linux'"
OTHER_MARKER = "platform_machine != 'aarch64' or sys_platform != 'linux'"


@dataclass(frozen=True, kw_only=True)
class IndexSnippet:
    tool: Tool
    file: str  # where it goes
    text: str
    username_env: str
    password_env: str


def _made(tool: Tool, file: str, text: str, stem: str) -> IndexSnippet:
    return IndexSnippet(
        tool=tool,
        file=file,
        text=text,
        username_env=f"{stem}_USERNAME",
        password_env=f"{stem}_PASSWORD",
    )


def index_name(registry: str, target: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", f"{registry}-{target}".lower())


def _env_stem(name: str) -> str:
    # uv and poetry upper-case the source name and turn other characters into "_".
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


def snippet(
    tool: Tool,
    location: IndexLocation,
    *,
    target: str,
    package: str,
    version: str | None,
    mirrors_pypi: bool,
) -> IndexSnippet:
    name = index_name(location.registry, target)
    if tool == "uv":
        return _uv(location, name, package, version)
    if tool == "poetry":
        return _poetry(location, name, package, version)
    return _pip(location, target, package, version, mirrors_pypi)


def _uv(location: IndexLocation, name: str, package: str, version: str | None) -> IndexSnippet:
    stem = f"UV_INDEX_{_env_stem(name)}"
    # Pinned as the pip and poetry snippets are: an index with a PyPI base would otherwise
    # serve PyPI's own (server) build of the same name until the farm's first upload.
    pin = f'\n[project]\ndependencies = ["{package}=={version}"]\n' if version else ""
    text = f"""\
# pyproject.toml: {package} from {location.registry} on Jetson (aarch64 Linux), PyPI elsewhere.
# Credentials: export {stem}_USERNAME=... {stem}_PASSWORD=...{pin}
[[tool.uv.index]]
name = "{name}"
url = "{location.read_url}"
explicit = true  # only the packages pinned to it below come from it

[tool.uv.sources]
{package} = [
  {{ index = "{name}", marker = "{JETSON_MARKER}" }},
]
"""
    return _made("uv", "pyproject.toml", text, stem)


def _poetry(location: IndexLocation, name: str, package: str, version: str | None) -> IndexSnippet:
    stem = f"POETRY_HTTP_BASIC_{_env_stem(name)}"
    constraint = f"=={version}" if version else "*"
    text = f"""\
# pyproject.toml: {package} from {location.registry} on Jetson (aarch64 Linux), PyPI elsewhere.
# Credentials: export {stem}_USERNAME=... {stem}_PASSWORD=...
[[tool.poetry.source]]
name = "{name}"
url = "{location.read_url}"
priority = "explicit"  # only dependencies that name it come from it

[tool.poetry.dependencies]
{package} = [
  {{ version = "{constraint}", source = "{name}", markers = "{JETSON_MARKER}" }},
  {{ version = "{constraint}", markers = "{OTHER_MARKER}" }},
]
"""
    return _made("poetry", "pyproject.toml", text, stem)


def _pip(
    location: IndexLocation,
    target: str,
    package: str,
    version: str | None,
    mirrors_pypi: bool,
) -> IndexSnippet:
    stem = f"FARM_{_env_stem(location.registry)}"
    scheme, rest = location.read_url.split("://", 1)
    # pip expands ${VAR} (upper case, digits, underscore) in requirement files.
    url = f"{scheme}://${{{stem}_USERNAME}}:${{{stem}_PASSWORD}}@{rest}"
    pin = f"=={version}" if version else ""
    insecure = plain_http_host(location.read_url)
    trusted = (
        f"\n--trusted-host {insecure}  # plain http: the profile allows it" if insecure else ""
    )
    dependencies = (
        "# The index also serves PyPI's packages, so dependencies resolve through it."
        if mirrors_pypi
        else "# This index does not mirror PyPI: install the dependencies first, or add them\n"
        "# to the index; never add --extra-index-url (dependency confusion)."
    )
    text = f"""\
# requirements-{target}.txt: pip install -r requirements-{target}.txt on the Jetson.
# Credentials: export {stem}_USERNAME=... {stem}_PASSWORD=...
# --index-url replaces PyPI for this install, so nobody can shadow {package} there.
{dependencies}
--index-url {url}{trusted}
{package}{pin} ; {JETSON_MARKER}
"""
    return _made("pip", f"requirements-{target}.txt", text, stem)
