"""The install stage: the published wheel, installed back from the index in a target container.

It proves what users will do works: a clean container of the target's base
image (QEMU on x86_64) creates a virtual environment, asks the index for
exactly this version with ``pip download --no-deps`` (the index URL with its
credentials arrives as an environment variable the docker client passes
through, never on a command line), prints the sha256 of what it got, and
installs that file. The hash must be the published wheel's.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from packaging.utils import parse_wheel_filename

from farm.credentials import Credentials
from farm.engine import Engine
from farm.errors import FarmError
from farm.models import Target
from farm.network import ca_bundle
from farm.process import capture, register_secret
from farm.publish import sha256_of
from farm.registries import IndexLocation

SCRIPT = """\
set -e
python{python} -m venv /tmp/farm-install
/tmp/farm-install/bin/pip download --quiet --no-deps --dest /tmp/farm-dl "$FARM_REQUIREMENT"
for wheel in /tmp/farm-dl/*.whl; do echo "farm-sha256 $(sha256sum "$wheel")"; done
/tmp/farm-install/bin/pip install --quiet --no-deps --no-index /tmp/farm-dl/*.whl
# sed reads all of pip's output: head would close the pipe and pip report BrokenPipeError.
/tmp/farm-install/bin/pip show "$FARM_PROJECT" | sed -n 1,2p
"""


class InstallFailed(FarmError):
    """The wheel could not be installed back from the index, or came back different."""


@dataclass(frozen=True, kw_only=True)
class InstallCheck:
    sha256: str
    summary: str
    duration_s: float


def index_url_with_credentials(read_url: str, credentials: Credentials | None) -> str:
    if credentials is None:
        return read_url
    parts = urlsplit(read_url)
    user = quote(credentials.username, safe="")
    secret = quote(credentials.password, safe="")
    register_secret(secret)
    netloc = f"{user}:{secret}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def install_argv(engine: Engine, target: Target, python: str, image: str) -> list[str]:
    # The index may be this machine's loopback registry: the host's network. PIP_INDEX_URL
    # takes its value (with credentials) from this process's environment, not from argv.
    argv = engine.run_argv(
        target.platform,
        "host",
        "-e",
        "PIP_INDEX_URL",
        "-e",
        "FARM_REQUIREMENT",
        "-e",
        "FARM_PROJECT",
        "-e",
        "PIP_DISABLE_PIP_VERSION_CHECK=1",
    )
    bundle = ca_bundle()
    if bundle is not None:
        argv += ["-v", f"{bundle}:/etc/farm-ca.pem:ro", "-e", "PIP_CERT=/etc/farm-ca.pem"]
    return [*argv, image, "sh", "-c", SCRIPT.format(python=python)]


def run_install_check(
    wheel: Path,
    target: Target,
    python: str,
    engine: Engine,
    *,
    location: IndexLocation,
    credentials: Credentials | None,
    on_line: Callable[[str], None],
) -> InstallCheck:
    started = time.monotonic()
    name, version, _, _ = parse_wheel_filename(wheel.name)
    env = {
        "PIP_INDEX_URL": index_url_with_credentials(location.read_url, credentials),
        "FARM_REQUIREMENT": f"{name}=={version}",
        "FARM_PROJECT": str(name),
    }
    result = capture(
        install_argv(engine, target, python, target.base_image.pinned),
        env={**engine.env, **env},
        timeout=1800,
    )
    for line in result.output.splitlines():
        on_line(line)
    if result.returncode != 0:
        raise InstallFailed(
            f"installing {name}=={version} from {location.registry} in a {target.name} "
            f"container failed: {result.failing_line()}"
        )
    got = re.findall(r"^farm-sha256 ([0-9a-f]{64})\s+\S*?([^/\s]+\.whl)$", result.output, re.M)
    expected = sha256_of(wheel)
    if (expected, wheel.name) not in got:
        found = ", ".join(f"{n} {h[:12]}…" for h, n in got) or "nothing"
        raise InstallFailed(
            f"pip got {found} from {location.registry}, not {wheel.name} {expected[:12]}…",
            hint="another file of this version is preferred by pip (a higher build number?)",
        )
    return InstallCheck(
        sha256=expected,
        summary=f"pip installed {wheel.name} from {location.registry} (sha256 matches)",
        duration_s=time.monotonic() - started,
    )
