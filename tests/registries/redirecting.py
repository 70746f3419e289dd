"""An index that sends readers elsewhere, as object storage and CDNs do: proof that the farm's
credentials stay with the origin the user configured.

``mode="redirect"``: every GET is answered 302 to the same path on ``elsewhere``.
``mode="links"``: every GET is a PEP 503 listing whose one file (``listed``) links to
``elsewhere`` without a ``#sha256`` (so a reader must download it to hash it); a JSON API
read outside ``simple`` (devpi's index configuration) gets a non-volatile index.
POST and PUT (uploads, devpi's index creation) are accepted with 200. The Authorization
header of every request is kept in ``seen``.
"""

from __future__ import annotations

from tests.registries.loopback import LoopbackServer, QuietHandler
from tests.registries.recorder import Seen


class RedirectingIndex(LoopbackServer):
    def __init__(self, elsewhere: str, mode: str, listed: str = "") -> None:
        self.elsewhere, self.mode, self.listed = elsewhere, mode, listed
        self.seen: list[Seen] = []
        super().__init__(type("Redirecting", (_Handler,), {"owner": self}))


class _Handler(QuietHandler):
    owner: RedirectingIndex

    def _note(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.owner.seen.append(Seen(self.command, self.path, self.headers.get("Authorization")))

    def do_GET(self) -> None:
        self._note()
        if self.owner.mode == "redirect":
            self.send_response(302)
            self.send_header("Location", f"{self.owner.elsewhere}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if "json" in self.headers.get("Accept", "") and "simple" not in self.path:
            self._send("application/json", b'{"result": {"type": "stage", "volatile": false}}')
            return
        name = self.owner.listed
        body = f'<html><body><a href="{self.owner.elsewhere}/files/{name}">{name}</a></body></html>'
        self._send("text/html", body.encode())

    def _send(self, content_type: str, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _accept(self) -> None:
        self._note()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_POST = do_PUT = _accept
