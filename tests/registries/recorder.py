"""An HTTP server that only writes down who asked it what: proof of where the farm sent things.

Every request is answered 404 (an index without the project), and its method,
path and Authorization header are kept in ``requests``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.registries.loopback import LoopbackServer, QuietHandler


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    authorization: str | None


class RecordingServer(LoopbackServer):
    def __init__(self, port: int = 0) -> None:
        self.requests: list[Seen] = []
        super().__init__(type("Recorder", (_Recorder,), {"owner": self}), port=port)


class _Recorder(QuietHandler):
    owner: RecordingServer

    def _record(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        seen = Seen(self.command, self.path, self.headers.get("Authorization"))
        self.owner.requests.append(seen)
        self.send_response(404, "Not Found")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PUT = _record
