"""A stand-in for GitLab's PyPI package registry that answers as GitLab documents it.

No GitLab can run in the tests, so this server applies the contract of
GitLab's ``lib/api/pypi_packages.rb`` and its helpers:

* ``POST /api/v4/projects/:id/packages/pypi`` (multipart: ``content``, ``name``,
  ``version``, optional ``sha256_digest``): 201 ``{"message":"201 Created"}``;
  a file name already in the package: 400 "File name has already been taken";
  over the size limit: 400 "File is too large"; a version outside
  ``pypi_version_regex``: 400;
* ``GET /api/v4/projects/:id/packages/pypi/simple/:name`` (PEP 503 normalised
  lookup): HTML anchors ``files/<sha256>/<file>#sha256=<sha256>`` with
  ``data-requires-python``; an unknown package: 404 (request forwarding off);
* ``GET .../files/:sha256/:file``: the bytes;
* Basic auth: a deploy token (any user name), ``gitlab-ci-token`` with the job
  token, or a personal access token; none or wrong: 401 with
  ``WWW-Authenticate: Basic realm="GitLab Packages Registry"``; a read-only
  token uploading: 403.

It also injects faults for the retry tests: the first N uploads answer 503.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP

from farm.publish import GITLAB_PYPI_VERSION
from tests.registries.loopback import LoopbackServer, QuietHandler


@dataclass
class GitlabState:
    project: str = "7"
    job_token: str = "job-token-0123456789"
    deploy_token: str = "deploy-token-abcdef"
    read_only_token: str = "read-only-token-xyz"
    max_file_size: int = 5 * 10**9
    fail_uploads: int = 0  # answer 503 to this many uploads first
    files: dict[str, dict[str, bytes | str]] = field(default_factory=dict)
    upload_attempts: int = 0


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class GitlabContractServer(LoopbackServer):
    def __init__(self, state: GitlabState | None = None) -> None:
        self.state = state or GitlabState()
        super().__init__(type("Handler", (_Handler,), {"state": self.state}))


class _Handler(QuietHandler):
    state: GitlabState

    # --- auth (lib/api/helpers/packages/basic_auth_helpers.rb) ----------------

    def _user(self) -> str | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        state = self.state
        if user == "gitlab-ci-token" and password == state.job_token:
            return "job"
        if password == state.deploy_token:
            return "deploy"
        if password == state.read_only_token:
            return "reader"
        return None

    def _unauthorized(self) -> None:
        self._json(401, {"message": "401 Unauthorized"}, realm=True)

    # --- routes ---------------------------------------------------------------

    def do_GET(self) -> None:
        base = f"/api/v4/projects/{self.state.project}/packages/pypi"
        user = self._user()
        if user is None:
            self._unauthorized()
            return
        if match := re.fullmatch(rf"{base}/simple/([^/]+)/?", self.path):
            self._simple(_normalise(match[1]), base)
        elif match := re.fullmatch(rf"{base}/files/([0-9a-f]{{64}})/([^/]+)", self.path):
            self._file(match[1], match[2])
        else:
            self._json(404, {"message": "404 Not Found"})

    def do_POST(self) -> None:
        if self.path != f"/api/v4/projects/{self.state.project}/packages/pypi":
            self._json(404, {"message": "404 Not Found"})
            return
        user = self._user()
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if user is None:
            self._unauthorized()
            return
        if user == "reader":
            self._json(403, {"message": "403 Forbidden"})
            return
        self.state.upload_attempts += 1
        if self.state.fail_uploads > 0:
            self.state.fail_uploads -= 1
            self._json(503, {"message": "503 Service Unavailable"})
            return
        self._upload(_multipart(self.headers.get("Content-Type", ""), body))

    def _upload(self, form: dict[str, tuple[str | None, bytes]]) -> None:
        state = self.state
        if "content" not in form or "name" not in form or "version" not in form:
            self._json(400, {"message": "400 Bad request - content, name, version are missing"})
            return
        filename, content = form["content"]
        name, version = form["name"][1].decode(), form["version"][1].decode()
        if not GITLAB_PYPI_VERSION.match(version):
            self._json(400, {"message": "400 Bad request - Version is invalid"})
            return
        if len(content) > state.max_file_size:
            self._json(400, {"message": "400 Bad request - File is too large"})
            return
        if filename in state.files:
            message = "400 Bad request - Validation failed: File name has already been taken"
            self._json(400, {"message": message})
            return
        state.files[filename or ""] = {
            "project": _normalise(name),
            "content": content,
            "sha256": hashlib.sha256(content).hexdigest(),
            "requires_python": form.get("requires_python", (None, b""))[1].decode(),
        }
        self._json(201, {"message": "201 Created"})

    def _simple(self, project: str, base: str) -> None:
        files = {k: v for k, v in self.state.files.items() if v["project"] == project}
        if not files:
            self._json(404, {"message": "404 Package Not Found"})
            return
        anchors = "".join(
            f'<a href="{base}/files/{meta["sha256"]}/{name}#sha256={meta["sha256"]}" '
            f'data-requires-python="{html.escape(str(meta["requires_python"]))}">{name}</a><br>'
            for name, meta in sorted(files.items())
        )
        page = f"<!DOCTYPE html><html><head><title>Links for {project}</title></head>"
        self._send(200, f"{page}<body><h1>Links for {project}</h1>{anchors}</body></html>")

    def _file(self, sha256: str, name: str) -> None:
        meta = self.state.files.get(name)
        if meta is None or meta["sha256"] != sha256:
            self._json(404, {"message": "404 Package Not Found"})
            return
        content = meta["content"]
        assert isinstance(content, bytes)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    # --- replies ----------------------------------------------------------------

    def _json(self, status: int, document: dict[str, str], *, realm: bool = False) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if realm:
            self.send_header("WWW-Authenticate", 'Basic realm="GitLab Packages Registry"')
        self.end_headers()
        self.wfile.write(body)

    def _send(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """Form fields of a multipart/form-data body: name -> (filename, value)."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = (part.get_filename(), payload)
    return fields
