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
from farm.errors import InstallFailed, host_faults
from farm.httpclient import plain_http_host
from farm.models import Target
from farm.network import ca_bundle
from farm.process import register_secret
from farm.publish import sha256_of
from farm.registries import IndexLocation
from farm.runner import EngineRunner

SCRIPT = """\
set -e
python{python} -m venv /tmp/farm-install
/tmp/farm-install/bin/pip download --quiet --no-deps --dest /tmp/farm-dl "$FARM_REQUIREMENT"
for wheel in /tmp/farm-dl/*.whl; do echo "farm-sha256 $(sha256sum "$wheel")"; done
/tmp/farm-install/bin/pip install --quiet --no-deps --no-index /tmp/farm-dl/*.whl
# sed reads all of pip's output: head would close the pipe and pip report BrokenPipeError.
/tmp/farm-install/bin/pip show "$FARM_PROJECT" | sed -n 1,2p
"""


# A virtual environment, one download and one install; slow indexes and QEMU included.
INSTALL_TIMEOUT_S = 1800.0


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


def install_options() -> list[str]:
    """``docker run`` options: the environment passed by name, the host's CA bundle if any."""
    options = ["-e", "PIP_INDEX_URL", "-e", "FARM_REQUIREMENT", "-e", "FARM_PROJECT"]
    options += ["-e", "PIP_TRUSTED_HOST"]
    options += ["-e", "PIP_DISABLE_PIP_VERSION_CHECK=1"]
    bundle = ca_bundle()
    if bundle is not None:
        options += ["-v", f"{bundle}:/etc/farm-ca.pem:ro", "-e", "PIP_CERT=/etc/farm-ca.pem"]
    return options


def run_install_check(
    wheel: Path,
    target: Target,
    python: str,
    engine: Engine,
    *,
    location: IndexLocation,
    credentials: Credentials | None,
    on_line: Callable[[str], None],
    log_dir: Path | None = None,
    timeout: float = INSTALL_TIMEOUT_S,
) -> InstallCheck:
    started = time.monotonic()
    name, version, _, _ = parse_wheel_filename(wheel.name)
    # The index may be this machine's loopback registry: the host's network. PIP_INDEX_URL
    # reaches the client through its environment (credentials included), never argv or logs.
    env = {
        "PIP_INDEX_URL": index_url_with_credentials(location.read_url, credentials),
        "FARM_REQUIREMENT": f"{name}=={version}",
        "FARM_PROJECT": str(name),
    }
    trusted = plain_http_host(location.read_url)
    if trusted:  # pip reads plain http from another machine only from a trusted host
        env["PIP_TRUSTED_HOST"] = trusted
    stem = f"install-{location.registry}"
    with (
        host_faults(f"install check of {wheel.name}", log_dir or "."),
        EngineRunner(
            engine,
            "install",
            on_line,
            log_path=log_dir / f"{stem}.log" if log_dir else None,
            script_path=log_dir / f"{stem}.sh" if log_dir else None,
        ) as runner,
    ):
        result = runner.container(
            target.base_image.pinned,
            ["sh", "-c", SCRIPT.format(python=python)],
            platform=target.platform,
            network="host",
            options=install_options(),
            env=env,
            timeout=timeout,
        )
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
