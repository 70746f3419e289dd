"""The ``farm`` parser, ``main(argv)`` and what happens to every error: the one place that
turns exceptions into messages and exit codes."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from farm import __version__, console
from farm.catalog import catalog_dirs, load_catalog
from farm.cli import catalog, host, pipeline, publish, wheels
from farm.cli._shared import Handler
from farm.errors import (
    EXIT_FAILURE,
    FarmError,
    Interrupted,
    error_document,
    host_fault,
    signal_exit_code,
    signals_raise,
)
from farm.settings import DEBUG_ENV, Settings

DESCRIPTION = """\
Build onnxruntime-gpu (and other) wheels for NVIDIA Jetson on x86_64 machines.

A target (jetpack5, jetpack6, jetpack7, bookworm-arm64) is chosen by you, never
detected from the machine farm runs on. Recipes say how a package is built and
which of its versions fit which target.
"""

WORKFLOW = """\
workflow:
  farm targets                                   what wheels can be built for
  farm recipes                                   packages, versions, default per target
  farm plan onnxruntime-gpu --target jetpack6    the job: version, image, build command, key
  farm render onnxruntime-gpu --target jetpack6  the Dockerfile BuildKit will build
  farm doctor                                    can this machine build? (fixes for what not)
  farm build demo --target bookworm-arm64        a real aarch64 wheel, built under QEMU
  farm repair WHEEL --target bookworm-arm64      auditwheel repair in the target, verified
  farm inspect WHEEL --target jetpack6           can this wheel work there? (any wheel)
  farm build onnxruntime-gpu --target jp6 --dry-run
                                                 the exact BuildKit commands, nothing run
  farm registry serve --detach                   a local pypiserver index on 127.0.0.1
  farm publish WHEEL --registry local            upload once, verified by sha256
  farm index-config --target jp6 --tool uv       what a project pastes to install from it

configuration:
  --recipes DIR / FARM_RECIPES     extra catalog directories (targets/*.yaml, packages/*.yaml)
  FARM_BUILDER_CPUS, FARM_BUILDER_MEMORY_GIB
                                   the builder's size when it is not this machine
  FARM_ENGINE=buildx|classic, FARM_DOCKER=PATH, FARM_BUILDX_BUILDER, FARM_BUILDX_CACHE
                                   the BuildKit client (default: detected; see farm doctor)
  FARM_OUTPUT_DIR, FARM_CACHE_DIR  job outputs (./out), cached root filesystems (~/.cache/farm)
  FARM_STATE_DIR                   the local registry and run state (~/.local/share/farm)
  FARM_CONFIG / farm.toml / [tool.farm]
                                   registry profiles (gitlab, devpi, pypiserver, generic)
  TWINE_USERNAME/TWINE_PASSWORD, CI_JOB_TOKEN, .pypirc, .netrc
                                   registry credentials (never on the command line)
  FARM_PUBLISH_ATTEMPTS, FARM_PUBLISH_BACKOFF_S
                                   upload retries (4) and first backoff in seconds (1)

exit codes: 0 success, 1 a stage failed, 2 bad input (arguments, recipes, combinations),
            3 the host lacks something (docker, QEMU, disk)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="farm",
        description=DESCRIPTION,
        epilog=WORKFLOW,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"farm {__version__}")
    parser.add_argument(
        "--recipes",
        metavar="DIR",
        type=Path,
        action="append",
        default=[],
        help="an extra catalog directory; repeatable; its files replace "
        "built-in ones of the same name",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in (catalog, host, wheels, pipeline, publish):
        group.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    as_json = bool(getattr(args, "json", False))
    console.begin_command()
    debug = False  # until the settings say
    with signals_raise():
        try:
            settings = Settings.from_environ(os.environ)
            debug = settings.debug
            loaded = load_catalog(catalog_dirs(settings.recipe_dirs, args.recipes))
            return handler(args, loaded, settings)
        except FarmError as exc:
            return _failed(exc.message, exc.hint, exc.exit_code, as_json)
        except OSError as exc:  # the file system said no where no stage expected it
            fault = host_fault(exc)
            return _failed(fault.message, fault.hint, fault.exit_code, as_json)
        except KeyboardInterrupt:
            return _stopped(signal.SIGINT, as_json)
        except Interrupted as exc:
            return _stopped(exc.signum, as_json)
        except Exception as exc:
            if debug:
                raise
            return _failed(
                f"internal error: {type(exc).__name__}: {exc}",
                f"rerun with {DEBUG_ENV}=1 to see where, and report it",
                EXIT_FAILURE,
                as_json,
            )


def _failed(message: str, hint: str | None, code: int, as_json: bool) -> int:
    """The error line (and hint) on stderr; with --json, the error document unless one
    was printed already."""
    console.error(message, hint)
    if as_json and not console.printed_json():
        console.print_json(error_document(message, hint, code))
    return code


def _stopped(signum: int, as_json: bool) -> int:
    """After a signal unwound every stage (children stopped, containers removed, lock freed)."""
    doing = console.activity()
    name = signal.Signals(signum).name
    message = f"stopped by {name}" + (f" while {doing}" if doing else "")
    console.error(message)
    if as_json and not console.printed_json():
        console.print_json(error_document(message, None, signal_exit_code(signum)))
    return signal_exit_code(signum)


def entry_point() -> None:
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`farm plan ... | head`): stop quietly, as the Python docs advise.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_FAILURE
    sys.exit(code)
