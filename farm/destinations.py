"""Where wheels go: registry profiles resolved for a target, with their credentials.

``farm build --publish``, ``farm nightly``, ``farm publish``, ``farm registry list``
and ``farm index-config`` all start here: the profiles come from ``--config``,
else ``FARM_CONFIG``, else ``./farm.toml`` or ``[tool.farm]``; the embedded
``local`` registry is always there. Credentials are resolved per upload URL and
go only where the profile (or the running local server's record) says.
"""

from __future__ import annotations

import functools
import json
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm import console
from farm.catalog import Catalog
from farm.compat import select
from farm.credentials import Credentials, resolve
from farm.errors import CorruptRecord, UsageError
from farm.httpclient import plain_http_host
from farm.indexconfig import IndexSnippet, Tool, snippet
from farm.ledger import Ledger, LedgerEntry
from farm.localregistry import LOCAL, LocalRegistry
from farm.models import Target
from farm.pipeline import PublishTarget, Section
from farm.process import command_line
from farm.provenance import read_provenance
from farm.publish import (
    PublishedWheel,
    PublishRequest,
    check_wheel,
    credential_names,
    publish_wheel,
    twine_argv,
)
from farm.registries import (
    DevpiRegistry,
    GitlabRegistry,
    IndexLocation,
    Profile,
    PypiserverRegistry,
    RegistryConfig,
    load_config,
    locate,
    routes_by_target,
)
from farm.settings import Settings
from farm.smoke import wheel_providers
from farm.wheelcheck import file_name_problem
from farm.wheelfile import same_release


@dataclass(frozen=True)
class Registries:
    """The configured profiles (with ``local``) and the embedded local registry."""

    config: RegistryConfig
    local: LocalRegistry
    settings: Settings

    @classmethod
    def load(cls, settings: Settings, config_path: Path | None) -> Registries:
        local = LocalRegistry(settings.state_dir)
        path = config_path or settings.registry_config
        config = load_config(path, environ=dict(settings.environ), cwd=Path.cwd())
        return cls(local.with_local(config), local, settings)

    def credentials(self, name: str, location: IndexLocation) -> Credentials | None:
        # The generated password goes to the running local server only, not to a profile
        # that merely shares its name.
        stored = self.local.credentials_for(location.upload_url) if name == LOCAL else None
        profile = self.config.profile(name)
        found = resolve(
            name,
            profile,
            location.upload_url,
            environ=dict(self.settings.environ),
            home=self.settings.home,
            stored=stored,
        )
        if found is not None:
            _refuse_plain_http(name, profile, location)
        return found

    def publish_target(self, name: str, target: Target | None) -> PublishTarget:
        """A registry profile resolved for one target, with its credentials."""
        profile = self.config.profile(name)
        location = locate(name, profile, target)
        embedded = name == LOCAL and self.local.serves(location.upload_url)
        return PublishTarget(
            registry=name,
            profile=profile,
            location=location,
            credentials=self.credentials(name, location),
            retry=self.settings.publish_retry,
            confirm=functools.partial(self.local.require, location.upload_url)
            if embedded
            else None,
        )


def _refuse_plain_http(name: str, profile: Profile, location: IndexLocation) -> None:
    """Credentials over plain http to another machine can be read by anyone on the way:
    refused unless the profile opts in, and then said every time."""
    hosts = {plain_http_host(url) for url in (location.upload_url, location.read_url)} - {None}
    if not hosts:
        return
    where = ", ".join(sorted(str(host) for host in hosts))
    if not profile.allow_insecure_http:
        raise UsageError(
            f"registry {name}: credentials would go over plain http to {where}, where anyone "
            "on the way can read them",
            hint=f"use an https URL, or set allow_insecure_http = true in [registries.{name}]",
        )
    console.warn(
        f"registry {name}: sending credentials over plain http to {where} "
        "(allow_insecure_http = true)"
    )


def publish_target(
    settings: Settings, name: str, config_path: Path | None, target: Target | None
) -> PublishTarget:
    return Registries.load(settings, config_path).publish_target(name, target)


# --- farm publish -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PublishAsk:
    """What ``farm publish`` was asked: wheels, a registry, perhaps their target."""

    wheels: tuple[Path, ...]
    registry: str
    target: str | None = None
    require_smoke: bool = True
    config_path: Path | None = None


def publish_requests(
    catalog: Catalog, settings: Settings, ask: PublishAsk, warn: Callable[[str], None]
) -> list[PublishRequest]:
    """One request per wheel: where it goes, with which credentials, checked against what.

    ``warn`` hears of a damaged ledger entry (the wheel's provenance is then not compared).
    """
    registries = Registries.load(settings, ask.config_path)
    profile = registries.config.profile(ask.registry)
    explicit = catalog.target(ask.target).model if ask.target else None
    ledger = Ledger(settings.state_dir)
    requests = []
    for wheel in ask.wheels:
        target = explicit or wheel_target(wheel, catalog)
        if target is None and routes_by_target(profile):
            raise UsageError(
                f"{wheel.name}: registry {ask.registry} routes by target, and no smoke "
                "record names this wheel's target",
                hint="pass --target",
            )
        location = locate(ask.registry, profile, target)
        entry = ledger_entry(wheel, ledger, warn)
        requests.append(
            PublishRequest(
                wheel=wheel,
                location=location,
                profile=profile,
                credentials=registries.credentials(ask.registry, location),
                require_smoke=ask.require_smoke,
                retry=settings.publish_retry,
                target=target,
                expect_providers=wheel_providers(catalog, wheel.name, target) if target else (),
                ledger_entry=entry,
                release_built_as=None if entry else release_built_as(wheel, ledger),
            )
        )
    return requests


def publish_wheels(requests: list[PublishRequest], section: Section) -> list[PublishedWheel]:
    """Every wheel is checked before the first byte goes to the index: one bad wheel, none
    sent. Then each is published, in its own section of the log."""
    checked = [check_wheel(request) for request in requests]
    published = []
    for request, local_wheel in zip(requests, checked, strict=True):
        header = f"publish {request.wheel.name} to {request.location.registry}"
        with section("publish", header) as line:
            published.append(
                publish_wheel(request, on_line=line, sleep=time.sleep, checked=local_wheel)
            )
    return published


def publish_plan(requests: list[PublishRequest]) -> list[dict[str, Any]]:
    """What ``publish_wheels`` would do, after the same checks: index, credentials' source
    and the command (credentials by name only)."""
    for request in requests:
        check_wheel(request)
    return [
        {
            "wheel": str(request.wheel),
            "registry": request.location.registry,
            "upload_url": request.location.upload_url,
            "simple_url": request.location.simple_url,
            "credentials": request.credentials.source if request.credentials else None,
            "command": command_line(
                twine_argv(request.location, request.wheel), credential_names(request.credentials)
            ),
        }
        for request in requests
    ]


def wheel_target(wheel: Path, catalog: Catalog) -> Target | None:
    """The target a wheel was smoke-tested for, from its record."""
    for record in sorted(wheel.parent.glob("smoke-*.json")):
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if data.get("wheel") == wheel.name and data.get("target") in catalog.targets:
            return catalog.targets[data["target"]].model
    return None


def release_built_as(wheel: Path, ledger: Ledger) -> str | None:
    """The build key under which this state directory built the wheel's release (name,
    version and tags, whatever the build number), if it did: a wheel of that release whose
    provenance does not name a key the ledger holds is not one of this farm's builds."""
    if file_name_problem(wheel.name) is not None:
        return None  # the wheel check names what is wrong with the name
    for entry in ledger.scan().entries:
        for stage in ("repair", "publish"):
            found = entry.stages.get(stage)
            records = found.values() if isinstance(found, dict) else [found]
            for record in records:
                recorded = getattr(record, "wheel", None)
                name = Path(recorded).name if recorded else ""  # the ledger keeps paths
                if name and file_name_problem(name) is None and same_release(wheel.name, name):
                    return entry.build_key
    return None


def ledger_entry(wheel: Path, ledger: Ledger, warn: Callable[[str], None]) -> LedgerEntry | None:
    """The ledger's entry for the build key the wheel's provenance names, if this state
    directory built it; its provenance must then match (a wheel built elsewhere has none)."""
    try:
        record = read_provenance(wheel)
    except (OSError, zipfile.BadZipFile, ValueError):
        return None  # the wheel check names what is wrong with the file
    key = record.get("build_key") if record else None
    if not isinstance(key, str):
        return None
    try:
        return ledger.get(key)
    except CorruptRecord as exc:
        warn(f"{exc.message}; {wheel.name}'s provenance is not compared with it")
        return None


# --- farm registry list, farm index-config ------------------------------------------


def registry_rows(registries: Registries, target: Target | None) -> list[dict[str, Any]]:
    """Every profile with its index URLs (for ``target`` when it routes by target), and the
    ones that cannot be used with why."""
    rows: list[dict[str, Any]] = []
    for name, profile in sorted(registries.config.profiles.items()):
        entry: dict[str, Any] = {"name": name, "kind": profile.kind}
        if routes_by_target(profile) and target is None:
            entry.update(upload_url=None, simple_url=None, per_target=True)
        else:
            location = locate(name, profile, target)
            entry.update(
                upload_url=location.upload_url, simple_url=location.read_url, per_target=False
            )
        rows.append(entry)
    for name, why in sorted(registries.config.unavailable.items()):
        rows.append(
            {
                "name": name,
                "kind": "pypiserver",
                "upload_url": None,
                "simple_url": None,
                "per_target": False,
                "unavailable": why,
            }
        )
    return rows


@dataclass(frozen=True, kw_only=True)
class IndexConfigAsk:
    tool: Tool
    registry: str
    target: str
    package: str
    version: str | None = None
    config_path: Path | None = None


def index_config(catalog: Catalog, settings: Settings, ask: IndexConfigAsk) -> IndexSnippet:
    """The snippet that installs ``ask.package`` from the registry on the target."""
    registries = Registries.load(settings, ask.config_path)
    profile = registries.config.profile(ask.registry)
    target = catalog.target(ask.target).model
    location = locate(ask.registry, profile, target)
    version, package = ask.version, ask.package
    if ask.package in catalog.recipes:  # a recipe name: its distribution and default version
        entry = catalog.recipe(ask.package)
        package = entry.model.distribution or entry.model.name
        version = version or select(entry, target).version
    state = registries.local.state() if ask.registry == LOCAL else None
    return snippet(
        ask.tool,
        location,
        target=target.name,
        package=package,
        version=version,
        mirrors_pypi=_mirrors_pypi(profile, state.fallback if state else False),
    )


def _mirrors_pypi(profile: Profile, local_fallback: bool) -> bool:
    """Whether one --index-url of this registry also serves PyPI's packages."""
    if isinstance(profile, GitlabRegistry):
        return True  # GitLab forwards unknown names to pypi.org unless an admin turned it off
    if isinstance(profile, DevpiRegistry):
        return bool(profile.bases)
    if isinstance(profile, PypiserverRegistry):
        return local_fallback
    return False
