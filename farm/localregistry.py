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

``server.json`` is the only source of the local registry's address: while no
server runs (in the background or in the foreground) ``--registry local`` is
an error, never a guessed URL that the generated password would be sent to.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from farm.credentials import Credentials
from farm.errors import EnvironmentProblem, RegistryUnavailable
from farm.process import pid_alive, register_secret, spawn
from farm.process import stop as stop_process
from farm.registries import PypiserverRegistry, RegistryConfig

if TYPE_CHECKING:
    import subprocess

LOCAL = "local"
DEFAULT_PORT = 8765
HOST = "127.0.0.1"
USERNAME = "farm"
NOT_RUNNING = "the local registry is not running: farm registry serve --detach"


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
        return state if pid_alive(state.pid) else None

    def profile(self) -> PypiserverRegistry:
        """The running server's profile; a stopped one is an error, never a guessed URL."""
        state = self.state()
        if state is None:
            raise RegistryUnavailable(NOT_RUNNING)
        return PypiserverRegistry(kind="pypiserver", url=state.url)

    def with_local(self, config: RegistryConfig) -> RegistryConfig:
        """``config`` plus the ``local`` profile, unless a file defines one of that name."""
        if LOCAL in config.profiles:
            return config
        try:
            profiles = {LOCAL: self.profile(), **config.profiles}
        except RegistryUnavailable as exc:
            unavailable = {**config.unavailable, LOCAL: exc.message}
            return RegistryConfig(
                profiles=config.profiles, source=config.source, unavailable=unavailable
            )
        return RegistryConfig(profiles=profiles, source=config.source)

    def serves(self, url: str) -> bool:
        """Whether ``url`` is under the address the running server recorded."""
        state = self.state()
        return state is not None and url.startswith(f"{state.url}/")

    def require(self, url: str) -> None:
        """Raise unless the server still runs at ``url`` (a long build may outlive it)."""
        if self.serves(url):
            return
        state = self.state()
        if state is None:
            raise RegistryUnavailable(NOT_RUNNING)
        raise RegistryUnavailable(
            f"the local registry moved to {state.url} after this run began: run it again"
        )

    def credentials_for(self, url: str) -> Credentials | None:
        """The generated credentials, only for the URL the running server recorded."""
        return self.credentials() if self.serves(url) else None

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
        """Start pypiserver in the background (or find it running) and record where it is."""
        running = self.state()
        if running is not None:
            return running
        return self._launch(port, fallback=fallback, timeout=timeout)[1]

    def serve(
        self, port: int, *, fallback: bool, on_line: Callable[[str], None], timeout: float = 30
    ) -> int:
        """Run pypiserver in the foreground, its log passed to ``on_line``, until it ends or
        this process is interrupted or terminated. While it runs it is recorded like a
        background server, so ``--registry local`` finds it; it is stopped on the way out."""
        if self.state() is not None:
            raise EnvironmentProblem(
                "the local registry is already running", hint="farm registry stop"
            )
        offset = self.log.stat().st_size if self.log.is_file() else 0
        process, _ = self._launch(port, fallback=fallback, timeout=timeout)
        try:
            _follow(process, self.log, offset, on_line)
        except KeyboardInterrupt:
            return 0  # how a foreground server is meant to end
        finally:
            self.stop()
            stop_process(process)  # ended and reaped before farm returns, whatever stop() saw
        return process.returncode

    def _launch(
        self, port: int, *, fallback: bool, timeout: float
    ) -> tuple[subprocess.Popen[bytes], ServerState]:
        self.ensure_credentials()
        self.packages.mkdir(parents=True, exist_ok=True)
        url = f"http://{HOST}:{port}"
        if not _port_free(port):
            # Whatever answers there is not ours: recording it would send it the password.
            raise EnvironmentProblem(f"port {port} on {HOST} is taken", hint="pass --port")
        process = spawn(self.argv(port, fallback=fallback), log_path=self.log)
        try:
            self._await(process, url, timeout)
        except BaseException:  # a failed start, or Ctrl-C while waiting: leave no server behind
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            raise
        state = ServerState(url=url, pid=process.pid, port=port, fallback=fallback)
        _write_private(self.server_file, json.dumps(state.__dict__))
        return process, state

    def _await(self, process: subprocess.Popen[bytes], url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not _answers(f"{url}/health"):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace").strip().splitlines()[-1:]
                raise EnvironmentProblem(
                    f"pypiserver did not start on {url}: {tail[0] if tail else 'no output'}",
                    hint=f"is port {url.rsplit(':', 1)[1]} taken? see {self.log}",
                )
            time.sleep(0.2)

    def stop(self) -> ServerState | None:
        state = self.state()
        if state is not None:
            # Asked to end, then made to: a server left running would still hold the port.
            for sig, patience_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                if _ended(state.pid, sig, patience_s):
                    break
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


def _ended(pid: int, sig: signal.Signals, patience_s: float) -> bool:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + patience_s
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        # As servers bind: a closed connection's TIME_WAIT does not count, a listener does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _follow(
    process: subprocess.Popen[bytes], log_path: Path, offset: int, on_line: Callable[[str], None]
) -> None:
    """Pass the server's new log lines on until it exits; SIGTERM and SIGHUP interrupt."""
    with _terminate_as_interrupt(), log_path.open(errors="replace") as log:
        log.seek(offset)
        while process.poll() is None:
            _echo(log, on_line)
            time.sleep(0.2)
        _echo(log, on_line)


def _echo(log: IO[str], on_line: Callable[[str], None]) -> None:
    for line in log.readlines():
        on_line(line.rstrip("\n"))


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP end a foreground server as Ctrl-C does: cleaned up, not orphaned."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - our own loopback URL
            return True
    except urllib.error.HTTPError:
        return True  # it answered, even if with 401
    except (urllib.error.URLError, OSError):
        return False
