"""A reverse proxy in front of a real registry that fails the first N uploads with 503.

Reads pass through untouched, so the index the farm reads back is the real
server's; only POSTs (twine's uploads) are counted and, while failures are
left, answered 503 after their body was read, as an overloaded server would.
"""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

from tests.registries.loopback import LoopbackServer, QuietHandler


class FlakyProxy(LoopbackServer):
    def __init__(self, upstream: str, fail_uploads: int) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.failures_left = fail_uploads
        self.uploads_seen = 0
        super().__init__(type("Forwarder", (_Forwarder,), {"owner": self}))


class _Forwarder(QuietHandler):
    owner: FlakyProxy

    def do_GET(self) -> None:
        self._forward(b"")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.owner.uploads_seen += 1
        if self.owner.failures_left > 0:
            self.owner.failures_left -= 1
            self.send_response(503, "Service Unavailable")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._forward(body)

    def _forward(self, body: bytes) -> None:
        connection = http.client.HTTPConnection(self.owner.upstream_host, self.owner.upstream_port)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        connection.request(self.command, self.path, body=body or None, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        connection.close()
