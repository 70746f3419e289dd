"""``farm publish``, ``farm registry`` and ``farm index-config``: the command line of publishing."""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
import zipfile
from pathlib import Path
from typing import Any

from farm import console
from farm.catalog import Catalog
from farm.compat import select
from farm.credentials import Credentials, resolve
from farm.errors import CorruptRecord, UsageError
from farm.indexconfig import snippet
from farm.ledger import Ledger, LedgerEntry
from farm.localregistry import DEFAULT_PORT, LOCAL, LocalRegistry
from farm.models import Target
from farm.paths import state_dir
from farm.pipeline import PublishTarget
from farm.process import command_line
from farm.provenance import read_provenance
from farm.publish import (
    PublishedWheel,
    PublishRequest,
    RetryPolicy,
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
from farm.smoke import wheel_providers

PUBLISH_SCHEMA_VERSION = 1


def add_commands(commands: Any) -> None:
    """Attach the publishing subcommands to ``farm``'s subparsers."""
    _add_publish(commands)
    _add_registry(commands)
    _add_index_config(commands)


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="registry profiles (default: $FARM_CONFIG, ./farm.toml or [tool.farm] "
        "in ./pyproject.toml; 'local' is always there)",
    )


def _add_publish(commands: Any) -> None:
    publish = commands.add_parser(
        "publish",
        help="upload wheels to a private index, idempotently",
        description="Check every wheel before anything is sent (a sound zip, safe paths, a "
        "RECORD matching every file, ELF code of the tag's architecture, and with a target "
        "the verdict of `farm inspect`; exit 2 naming the wheel and the rule), ask the index "
        "whether its file name is taken (same sha256: nothing to do; other bytes: an earlier "
        "build, so a copy with the next PEP 427 build number is published, as `farm build "
        "--publish` does, and kept in renumbered/ beside the wheel), upload with twine, "
        "retrying transient failures with bounded backoff, and read the index back to confirm "
        "the hash. A wheel needs a passing smoke record next to it. Credentials come "
        "from the environment, .pypirc or .netrc, never from the command line.",
    )
    publish.add_argument("wheels", nargs="+", type=Path, metavar="WHEEL", help=".whl files")
    publish.add_argument("-r", "--registry", required=True, help="registry profile name")
    publish.add_argument(
        "-t", "--target", help="the wheels' target (default: from their smoke records)"
    )
    publish.add_argument(
        "--no-smoke-required",
        dest="require_smoke",
        action="store_false",
        help="publish even without a passing smoke record next to the wheel",
    )
    publish.add_argument(
        "--dry-run", action="store_true", help="show the index, credentials source and command"
    )
    publish.add_argument("--json", action="store_true", help="print a versioned JSON document")
    add_config_option(publish)
    publish.set_defaults(handler=cmd_publish)


def _add_registry(commands: Any) -> None:
    registry = commands.add_parser(
        "registry",
        help="the embedded local registry, and the configured ones",
        description="`serve` runs pypiserver on 127.0.0.1 over the state directory with "
        "generated upload credentials, so `--registry local` needs no configuration.",
    )
    actions = registry.add_subparsers(dest="action", metavar="ACTION", required=True)
    serve = actions.add_parser("serve", help="run the local registry (pypiserver)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    serve.add_argument(
        "--detach", action="store_true", help="start in the background and return once it answers"
    )
    serve.add_argument(
        "--fallback",
        action="store_true",
        help="redirect names it does not hold to pypi.org (off: no dependency confusion)",
    )
    serve.set_defaults(handler=cmd_registry_serve)
    stop = actions.add_parser("stop", help="stop the local registry")
    stop.set_defaults(handler=cmd_registry_stop)
    status = actions.add_parser("status", help="whether the local registry runs, and where")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=cmd_registry_status)
    listing = actions.add_parser("list", help="the registry profiles and their index URLs")
    listing.add_argument("-t", "--target", help="resolve per-target routes for this target")
    listing.add_argument("--json", action="store_true", help="print JSON")
    add_config_option(listing)
    listing.set_defaults(handler=cmd_registry_list)


def _add_index_config(commands: Any) -> None:
    index = commands.add_parser(
        "index-config",
        help="the snippet a project pastes to install from the index",
        description="Print the uv, pip or poetry configuration that installs the package from "
        "the private index on Jetson (aarch64 Linux) and from PyPI elsewhere, with "
        "credentials as environment placeholders.",
    )
    index.add_argument("-t", "--target", required=True, help="target name or alias")
    index.add_argument("--tool", choices=("uv", "pip", "poetry"), required=True)
    index.add_argument("-r", "--registry", default=LOCAL, help="registry profile (default local)")
    index.add_argument(
        "--package",
        default="onnxruntime-gpu",
        help="a recipe or distribution name (default onnxruntime-gpu)",
    )
    index.add_argument(
        "--version",
        dest="package_version",
        metavar="VERSION",
        help="pin this version (default: the recipe's default for the target)",
    )
    add_config_option(index)
    index.set_defaults(handler=cmd_index_config)


# --- shared -------------------------------------------------------------------


def _registries(config_path: Path | None) -> tuple[RegistryConfig, LocalRegistry]:
    local = LocalRegistry(state_dir())
    config = load_config(config_path, environ=dict(os.environ), cwd=Path.cwd())
    return local.with_local(config), local


def _credentials(
    name: str, profile: Profile, location: IndexLocation, local: LocalRegistry
) -> Credentials | None:
    # The generated password goes to the running local server only, not to a profile
    # that merely shares its name.
    stored = local.credentials_for(location.upload_url) if name == LOCAL else None
    return resolve(
        name,
        profile,
        location.upload_url,
        environ=dict(os.environ),
        home=Path.home(),
        stored=stored,
    )


def _wheel_target(wheel: Path, catalog: Catalog) -> Target | None:
    """The target a wheel was smoke-tested for, from its record."""
    for record in sorted(wheel.parent.glob("smoke-*.json")):
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if data.get("wheel") == wheel.name and data.get("target") in catalog.targets:
            return catalog.targets[data["target"]].model
    return None


def _retry_policy() -> RetryPolicy:
    try:
        attempts = int(os.environ.get("FARM_PUBLISH_ATTEMPTS", "4"))
        first = float(os.environ.get("FARM_PUBLISH_BACKOFF_S", "1"))
    except ValueError:
        raise UsageError("FARM_PUBLISH_ATTEMPTS / FARM_PUBLISH_BACKOFF_S must be numbers") from None
    if attempts < 1 or first < 0:
        raise UsageError("FARM_PUBLISH_ATTEMPTS must be >= 1 and FARM_PUBLISH_BACKOFF_S >= 0")
    return RetryPolicy(attempts=attempts, first_delay_s=first)


def publish_target(name: str, config_path: Path | None, target: Target | None) -> PublishTarget:
    """A registry profile resolved for one target, with its credentials: what the runner needs."""
    config, local = _registries(config_path)
    profile = config.profile(name)
    location = locate(name, profile, target)
    embedded = name == LOCAL and local.serves(location.upload_url)
    return PublishTarget(
        registry=name,
        profile=profile,
        location=location,
        credentials=_credentials(name, profile, location, local),
        retry=_retry_policy(),
        confirm=functools.partial(local.require, location.upload_url) if embedded else None,
    )


# --- farm publish -------------------------------------------------------------


def cmd_publish(args: argparse.Namespace, catalog: Catalog) -> int:
    config, local = _registries(args.config)
    profile = config.profile(args.registry)
    explicit = catalog.target(args.target).model if args.target else None
    requests = [
        _publish_request(args, catalog, wheel, profile, explicit, local) for wheel in args.wheels
    ]
    # Every wheel is checked before the first byte goes to the index: one bad wheel, none sent.
    checked = [check_wheel(request) for request in requests]
    if args.dry_run:
        return _publish_dry_run(requests, args.json)
    published: list[PublishedWheel] = []
    for request, local_wheel in zip(requests, checked, strict=True):
        header = f"publish {request.wheel.name} to {request.location.registry}"
        with console.section("publish", header) as line:
            published.append(
                publish_wheel(request, on_line=line, sleep=time.sleep, checked=local_wheel)
            )
    _report_published(published, args.json)
    return 0


def _publish_request(
    args: argparse.Namespace,
    catalog: Catalog,
    wheel: Path,
    profile: Profile,
    explicit: Target | None,
    local: LocalRegistry,
) -> PublishRequest:
    target = explicit or _wheel_target(wheel, catalog)
    if target is None and routes_by_target(profile):
        raise UsageError(
            f"{wheel.name}: registry {args.registry} routes by target, and no smoke "
            "record names this wheel's target",
            hint="pass --target",
        )
    location = locate(args.registry, profile, target)
    return PublishRequest(
        wheel=wheel,
        location=location,
        profile=profile,
        credentials=_credentials(args.registry, profile, location, local),
        require_smoke=args.require_smoke,
        retry=_retry_policy(),
        target=target,
        expect_providers=wheel_providers(catalog, wheel.name, target) if target else (),
        ledger_entry=_ledger_entry(wheel),
    )


def _ledger_entry(wheel: Path) -> LedgerEntry | None:
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
        return Ledger(state_dir()).get(key)
    except CorruptRecord as exc:
        console.warn(f"{exc.message}; {wheel.name}'s provenance is not compared with it")
        return None


def _publish_dry_run(requests: list[PublishRequest], as_json: bool) -> int:
    plan = [_dry_run_entry(request) for request in requests]
    if as_json:
        document = {"schema_version": PUBLISH_SCHEMA_VERSION, "dry_run": True, "plan": plan}
        console.print_json(document)
        return 0
    for entry in plan:
        console.print_text(
            f"# {entry['wheel']} -> {entry['registry']} ({entry['simple_url']}); "
            f"credentials: {entry['credentials'] or 'none found (twine tries keyring)'}\n"
            f"{entry['command']}\n"
        )
    return 0


def _dry_run_entry(request: PublishRequest) -> dict[str, Any]:
    location = request.location
    return {
        "wheel": str(request.wheel),
        "registry": location.registry,
        "upload_url": location.upload_url,
        "simple_url": location.simple_url,
        "credentials": request.credentials.source if request.credentials else None,
        "command": command_line(
            twine_argv(location, request.wheel), credential_names(request.credentials)
        ),
    }


def _report_published(published: list[PublishedWheel], as_json: bool) -> None:
    if as_json:
        console.print_json(
            {
                "schema_version": PUBLISH_SCHEMA_VERSION,
                "published": [item.to_json() for item in published],
            }
        )
        return
    for item in published:
        verb = "uploaded" if item.state == "uploaded" else "already there"
        console.print_text(f"{verb}: {item.wheel} sha256 {item.sha256[:16]}… -> {item.index}\n")
        if item.renumbered_from:
            console.print_text(f"  (build-numbered copy of {item.renumbered_from}: {item.path})\n")


# --- farm registry ------------------------------------------------------------


def cmd_registry_serve(args: argparse.Namespace, catalog: Catalog) -> int:
    local = LocalRegistry(state_dir())
    if not args.detach:
        credentials = local.ensure_credentials()
        console.info(
            f"serving {local.packages} on http://127.0.0.1:{args.port}/simple/ "
            f"(user {credentials.username}; password in {credentials.source}); Ctrl-C stops"
        )
        returncode = local.serve(args.port, fallback=args.fallback, on_line=console.info)
        return 0 if returncode == 0 else 1
    state = local.start(args.port, fallback=args.fallback)
    console.info(f"local registry at {state.url}/simple/ (pid {state.pid}, log {local.log})")
    return 0


def cmd_registry_stop(args: argparse.Namespace, catalog: Catalog) -> int:
    stopped = LocalRegistry(state_dir()).stop()
    console.info(f"stopped pid {stopped.pid}" if stopped else "the local registry was not running")
    return 0


def cmd_registry_status(args: argparse.Namespace, catalog: Catalog) -> int:
    status = LocalRegistry(state_dir()).describe()
    if args.json:
        console.print_json({"schema_version": PUBLISH_SCHEMA_VERSION, **status})
    else:
        where = status["simple_url"] if status["running"] else "not running"
        console.print_text(f"local: {where}\npackages: {status['packages']}\n")
    return 0 if status["running"] else 1


def cmd_registry_list(args: argparse.Namespace, catalog: Catalog) -> int:
    config, _ = _registries(args.config)
    target = catalog.target(args.target).model if args.target else None
    rows: list[dict[str, Any]] = []
    for name, profile in sorted(config.profiles.items()):
        entry: dict[str, Any] = {"name": name, "kind": profile.kind}
        if routes_by_target(profile) and target is None:
            entry.update(upload_url=None, simple_url=None, per_target=True)
        else:
            location = locate(name, profile, target)
            entry.update(
                upload_url=location.upload_url, simple_url=location.read_url, per_target=False
            )
        rows.append(entry)
    for name, why in sorted(config.unavailable.items()):
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
    if args.json:
        console.print_json(
            {"schema_version": PUBLISH_SCHEMA_VERSION, "source": config.source, "registries": rows}
        )
        return 0
    console.print_table(
        f"registries ({config.source})",
        ("name", "kind", "index"),
        [(row["name"], row["kind"], row.get("unavailable") or _index_column(row)) for row in rows],
    )
    return 0


def _index_column(row: dict[str, Any]) -> str:
    return str(row["simple_url"] or "per target: pass --target")


# --- farm index-config --------------------------------------------------------


def cmd_index_config(args: argparse.Namespace, catalog: Catalog) -> int:
    config, local = _registries(args.config)
    profile = config.profile(args.registry)
    target = catalog.target(args.target).model
    location = locate(args.registry, profile, target)
    version, package = args.package_version, args.package
    if args.package in catalog.recipes:  # a recipe name: its distribution and default version
        entry = catalog.recipe(args.package)
        package = entry.model.distribution or entry.model.name
        version = version or select(entry, target).version
    state = local.state() if args.registry == LOCAL else None
    result = snippet(
        args.tool,
        location,
        target=target.name,
        package=package,
        version=version,
        mirrors_pypi=_mirrors_pypi(profile, state.fallback if state else False),
    )
    console.print_text(result.text)
    return 0


def _mirrors_pypi(profile: Profile, local_fallback: bool) -> bool:
    """Whether one --index-url of this registry also serves PyPI's packages."""
    if isinstance(profile, GitlabRegistry):
        return True  # GitLab forwards unknown names to pypi.org unless an admin turned it off
    if isinstance(profile, DevpiRegistry):
        return bool(profile.bases)
    if isinstance(profile, PypiserverRegistry):
        return local_fallback
    return False
