"""``farm publish``, ``farm registry`` and ``farm index-config``: the command line of publishing."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from farm import console
from farm.catalog import Catalog
from farm.cli._shared import add_config_option
from farm.destinations import (
    IndexConfigAsk,
    PublishAsk,
    Registries,
    index_config,
    publish_plan,
    publish_requests,
    publish_wheels,
    registry_rows,
)
from farm.errors import EXIT_FAILURE, EXIT_OK
from farm.ledger import Ledger
from farm.localregistry import DEFAULT_PORT, LOCAL, LocalRegistry
from farm.publish import PublishedWheel
from farm.schemas import versioned
from farm.settings import Settings


def add_commands(commands: Any) -> None:
    """Attach the publishing subcommands to ``farm``'s subparsers."""
    _add_publish(commands)
    _add_registry(commands)
    _add_index_config(commands)


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


# --- farm publish -------------------------------------------------------------


def cmd_publish(args: argparse.Namespace, catalog: Catalog, settings: Settings) -> int:
    ask = PublishAsk(
        wheels=tuple(args.wheels),
        registry=args.registry,
        target=args.target,
        require_smoke=args.require_smoke,
        config_path=args.config,
    )
    if args.dry_run:
        requests = publish_requests(catalog, settings, ask, console.warn)
        _print_publish_plan(publish_plan(requests), args.json)
        return EXIT_OK
    # The ledger is read to tell this farm's builds from others: no build may write it
    # meanwhile (a second farm on this state directory exits 3 naming the first).
    with Ledger(settings.state_dir).locked("farm publish"):
        requests = publish_requests(catalog, settings, ask, console.warn)
        _print_published(publish_wheels(requests, console.section), args.json)
    return EXIT_OK


def _print_publish_plan(plan: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        console.print_json(versioned("publish", {"dry_run": True, "plan": plan}))
        return
    for entry in plan:
        console.print_text(
            f"# {entry['wheel']} -> {entry['registry']} ({entry['simple_url']}); "
            f"credentials: {entry['credentials'] or 'none found (twine tries keyring)'}\n"
            f"{entry['command']}\n"
        )


def _print_published(published: list[PublishedWheel], as_json: bool) -> None:
    if as_json:
        items = [item.to_json() for item in published]
        console.print_json(versioned("publish", {"published": items}))
        return
    for item in published:
        verb = "uploaded" if item.state == "uploaded" else "already there"
        console.print_text(f"{verb}: {item.wheel} sha256 {item.sha256[:16]}… -> {item.index}\n")
        if item.renumbered_from:
            console.print_text(f"  (build-numbered copy of {item.renumbered_from}: {item.path})\n")


# --- farm registry ------------------------------------------------------------


def cmd_registry_serve(args: argparse.Namespace, catalog: Catalog, settings: Settings) -> int:
    local = LocalRegistry(settings.state_dir)
    if not args.detach:
        credentials = local.ensure_credentials()
        console.info(
            f"serving {local.packages} on http://127.0.0.1:{args.port}/simple/ "
            f"(user {credentials.username}; password in {credentials.source}); Ctrl-C stops"
        )
        returncode = local.serve(args.port, fallback=args.fallback, on_line=console.info)
        return EXIT_OK if returncode == 0 else EXIT_FAILURE
    state = local.start(args.port, fallback=args.fallback)
    console.info(f"local registry at {state.url}/simple/ (pid {state.pid}, log {local.log})")
    return EXIT_OK


def cmd_registry_stop(args: argparse.Namespace, catalog: Catalog, settings: Settings) -> int:
    stopped = LocalRegistry(settings.state_dir).stop()
    console.info(f"stopped pid {stopped.pid}" if stopped else "the local registry was not running")
    return EXIT_OK


def cmd_registry_status(args: argparse.Namespace, catalog: Catalog, settings: Settings) -> int:
    status = LocalRegistry(settings.state_dir).describe()
    if args.json:
        console.print_json(versioned("registry-status", status))
    else:
        where = status["simple_url"] if status["running"] else "not running"
        console.print_text(f"local: {where}\npackages: {status['packages']}\n")
    return EXIT_OK if status["running"] else EXIT_FAILURE


def cmd_registry_list(args: argparse.Namespace, catalog: Catalog, settings: Settings) -> int:
    registries = Registries.load(settings, args.config)
    target = catalog.target(args.target).model if args.target else None
    rows = registry_rows(registries, target)
    source = registries.config.source
    if args.json:
        console.print_json(versioned("registry-list", {"source": source, "registries": rows}))
        return EXIT_OK
    console.print_table(
        f"registries ({source})",
        ("name", "kind", "index"),
        [(row["name"], row["kind"], row.get("unavailable") or _index_column(row)) for row in rows],
    )
    return EXIT_OK


def _index_column(row: dict[str, Any]) -> str:
    return str(row["simple_url"] or "per target: pass --target")


# --- farm index-config --------------------------------------------------------


def cmd_index_config(args: argparse.Namespace, catalog: Catalog, settings: Settings) -> int:
    ask = IndexConfigAsk(
        tool=args.tool,
        registry=args.registry,
        target=args.target,
        package=args.package,
        version=args.package_version,
        config_path=args.config,
    )
    console.print_text(index_config(catalog, settings, ask).text)
    return EXIT_OK
