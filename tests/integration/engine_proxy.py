"""A unix-socket relay in front of the real docker daemon, which a test can cut.

Clients pointed at it with ``DOCKER_HOST=unix://PATH`` talk to the real
engine through it; :meth:`EngineRelay.cut` closes the listening socket and
every open connection, so to the client the daemon is gone mid-run, exactly
as when dockerd stops, while the real daemon keeps serving other clients.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

DAEMON_SOCKET = "/var/run/docker.sock"


class EngineRelay:
    def __init__(self, path: Path, daemon: str = DAEMON_SOCKET) -> None:
        self.path, self.daemon = path, daemon
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(64)
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def docker_host(self) -> str:
        return f"unix://{self.path}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # cut
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.daemon)
            with self._lock:
                self._open += [client, upstream]
                self.connections += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()

    def cut(self) -> None:
        """The daemon is gone for every client of this relay, now and later."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
