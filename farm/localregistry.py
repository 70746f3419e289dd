"""The embedded registry: pypiserver on 127.0.0.1 over a directory of the state dir.

``farm registry serve`` makes ``--registry local`` work with no configuration:
it generates an upload user and password once (kept in a 0600 file, with an
htpasswd file for pypiserver beside it), starts pypiserver with every action
(upload, download, list) behind that password and with its fallback to
public PyPI off, and notes the URL and process id so other farm commands
find it. Layout under ``<state>/registry/``::

    packages/          the wheels pypiserver serves
    credentials.json   {"username", "password"}  (mode 0600)
    htpasswd           the same password, hashed  (mode 0600)
    server.json        {"url", "pid", "port", "fallback"} while it runs
    server.log         pypiserver's log
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm.credentials import Credentials
from farm.errors import EnvironmentProblem
from farm.process import register_secret, spawn
from farm.registries import PypiserverRegistry

LOCAL = "local"
DEFAULT_PORT = 8765
HOST = "127.0.0.1"
USERNAME = "farm"


@dataclass(frozen=True, kw_only=True)
class ServerState:
    url: str
    pid: int
    port: int
    fallback: bool


class LocalRegistry:
    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "registry"
        self.packages = self.root / "packages"
        self.credentials_file = self.root / "credentials.json"
        self.htpasswd = self.root / "htpasswd"
        self.server_file = self.root / "server.json"
        self.log = self.root / "server.log"

    # --- credentials ---------------------------------------------------------

    def credentials(self) -> Credentials | None:
        try:
            data = json.loads(self.credentials_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        register_secret(data["password"])
        return Credentials(
            username=data["username"],
            password=data["password"],
            source=str(self.credentials_file),
        )

    def ensure_credentials(self) -> Credentials:
        """Generate the upload credentials once; later calls read them back."""
        existing = self.credentials()
        if existing is not None and self.htpasswd.is_file():
            return existing
        from passlib.apache import HtpasswdFile  # pypiserver[passlib]

        self.root.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(24)
        register_secret(password)
        _write_private(
            self.credentials_file, json.dumps({"username": USERNAME, "password": password})
        )
        table = HtpasswdFile(new=True)
        table.set_password(USERNAME, password)
        _write_private(self.htpasswd, table.to_string().decode())
        return Credentials(username=USERNAME, password=password, source=str(self.credentials_file))

    # --- the server ----------------------------------------------------------

    def state(self) -> ServerState | None:
        """The running server, or None (a stale server.json is ignored)."""
        try:
            data = json.loads(self.server_file.read_text(encoding="utf-8"))
            state = ServerState(**data)
        except (OSError, ValueError, TypeError):
            return None
        return state if _alive(state.pid) else None

    def profile(self) -> PypiserverRegistry:
        state = self.state()
        url = state.url if state else f"http://{HOST}:{DEFAULT_PORT}"
        return PypiserverRegistry(kind="pypiserver", url=url)

    def argv(self, port: int, *, fallback: bool) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "pypiserver",
            "run",
            "--interface",
            HOST,
            "--port",
            str(port),
            "--passwords",
            str(self.htpasswd),
            "--authenticate",
            "update,download,list",
            "--hash-algo",
            "sha256",
        ]
        if not fallback:
            # Otherwise a name missing here redirects pip to pypi.org: dependency confusion.
            argv.append("--disable-fallback")
        return [*argv, str(self.packages)]

    def start(self, port: int, *, fallback: bool, timeout: float = 30) -> ServerState:
        running = self.state()
        if running is not None:
            return running
        self.ensure_credentials()
        self.packages.mkdir(parents=True, exist_ok=True)
        process = spawn(self.argv(port, fallback=fallback), log_path=self.log)
        url = f"http://{HOST}:{port}"
        state = ServerState(url=url, pid=process.pid, port=port, fallback=fallback)
        deadline = time.monotonic() + timeout
        while not _answers(f"{url}/health"):
            if process.poll() is not None or time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
                tail = self.log.read_text(errors="replace").strip().splitlines()[-1:]
                raise EnvironmentProblem(
                    f"pypiserver did not start on {url}: {tail[0] if tail else 'no output'}",
                    hint=f"is port {port} taken? see {self.log}",
                )
            time.sleep(0.2)
        _write_private(self.server_file, json.dumps(state.__dict__))
        return state

    def stop(self) -> ServerState | None:
        state = self.state()
        if state is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(state.pid, signal.SIGTERM)
            for _ in range(50):
                if not _alive(state.pid):
                    break
                time.sleep(0.1)
        self.server_file.unlink(missing_ok=True)
        return state

    def describe(self) -> dict[str, Any]:
        state = self.state()
        return {
            "running": state is not None,
            "url": state.url if state else None,
            "simple_url": f"{state.url}/simple/" if state else None,
            "pid": state.pid if state else None,
            "fallback": state.fallback if state else None,
            "packages": str(self.packages),
            "credentials": str(self.credentials_file),
            "log": str(self.log),
        }


def _write_private(path: Path, text: str) -> None:
    """Create with mode 0600 from the start: the secret is never world-readable."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    temporary.replace(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this very process counts as gone.
    try:
        status = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return True
    return status != "Z"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - our own loopback URL
            return True
    except urllib.error.HTTPError:
        return True  # it answered, even if with 401
    except (urllib.error.URLError, OSError):
        return False
