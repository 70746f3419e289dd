"""A reader of PEP 503 / PEP 691 simple indexes: which files a project has, with their hashes.

Publishing asks the index before uploading (is this file name taken, by the
same bytes?) and after (did the upload land, with the right hash?). Private
indexes need credentials to read, sent as HTTP Basic auth. Failures are
sorted the way publishing needs them: rejected credentials, a transient
failure worth retrying (connection refused or reset, timeouts, 429, 5xx),
or anything else.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from farm.credentials import Credentials
from farm.errors import CredentialsRejected, RegistryError
from farm.httpclient import open_url

# PEP 691: ask for JSON, accept HTML (PEP 503) from servers that only speak that.
ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.2"
CHUNK = 1 << 20
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class TransientFailure(Exception):
    """Worth another try: the server was down, busy or cut the connection."""


@dataclass(frozen=True, kw_only=True)
class RemoteFile:
    filename: str
    url: str
    sha256: str | None


def normalise(name: str) -> str:
    """PEP 503 project name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


def project_url(simple_url: str, project: str) -> str:
    return f"{simple_url.rstrip('/')}/{normalise(project)}/"


def project_files(
    simple_url: str, project: str, auth: Credentials | None, *, timeout: float = 30
) -> dict[str, RemoteFile]:
    """The files the index lists for ``project``; empty when it has none (404)."""
    url = project_url(simple_url, project)
    try:
        with _open(url, auth, timeout=timeout, accept=ACCEPT, auth_origin=simple_url) as response:
            body = response.read()
            content_type = response.headers.get("Content-Type", "")
            final_url = response.geturl()
    except _NotFound:
        return {}
    if "json" in content_type:
        files = _from_json(json.loads(body), final_url)
    else:
        files = _from_html(body.decode("utf-8", "replace"), final_url)
    return {file.filename: file for file in files}


def download_sha256(
    url: str, auth: Credentials | None, *, index_url: str, timeout: float = 300
) -> str:
    """Stream a file the index at ``index_url`` lists and hash it, in bounded memory. The
    credentials go along only when the file is on the index's own origin."""
    digest = hashlib.sha256()
    try:
        with _open(url, auth, timeout=timeout, accept="*/*", auth_origin=index_url) as response:
            while chunk := response.read(CHUNK):
                digest.update(chunk)
    except _NotFound:
        raise RegistryError(f"{_safe(url)}: the index lists it, but HTTP 404 Not Found") from None
    return digest.hexdigest()


def download(url: str, dest: Path, *, timeout: float = 300) -> str:
    """Stream ``url`` (http, https, or file for a local mirror) into ``dest``; its sha256."""
    if urlsplit(url).scheme == "file":
        local = Path(urllib.request.url2pathname(urlsplit(url).path))
        try:
            with local.open("rb") as handle:
                return _write_hashed(handle, dest)
        except FileNotFoundError:
            raise RegistryError(f"{local}: no such file") from None
    try:
        with _open(url, None, timeout=timeout, accept="*/*", auth_origin=None) as response:
            return _write_hashed(response, dest)
    except _NotFound:
        raise RegistryError(f"{_safe(url)}: HTTP 404 Not Found") from None


def _write_hashed(source: Any, dest: Path) -> str:
    """Copy a readable stream into ``dest`` in bounded memory; the sha256 of what was copied."""
    digest = hashlib.sha256()
    with dest.open("wb") as out:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


class _NotFound(Exception):
    pass


def _open(
    url: str, auth: Credentials | None, *, timeout: float, accept: str, auth_origin: str | None
) -> Any:
    """``url``, with ``auth`` only if it is on ``auth_origin`` (farm.httpclient)."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise RegistryError(f"{_safe(url)}: not an http(s) URL")
    try:
        return open_url(
            _strip_fragment(url),
            credentials=auth,
            credentials_origin=auth_origin,
            headers={"Accept": accept},
            timeout=timeout,
        )
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 404:
            raise _NotFound from None
        where = _safe(url)
        if exc.code in (401, 403):
            raise CredentialsRejected(f"HTTP {exc.code} {exc.reason} from {where}") from None
        if exc.code in TRANSIENT_STATUS:
            raise TransientFailure(f"{where}: HTTP {exc.code} {exc.reason}") from None
        raise RegistryError(f"{where}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TransientFailure(f"{_safe(url)}: {reason}") from None


def _strip_fragment(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(fragment=""))


def _safe(url: str) -> str:
    """A URL fit for a message: no credentials, no fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc, fragment=""))


def _from_json(data: dict[str, Any], base: str) -> list[RemoteFile]:
    return [
        RemoteFile(
            filename=entry["filename"],
            url=urljoin(base, entry["url"]),
            sha256=(entry.get("hashes") or {}).get("sha256"),
        )
        for entry in data.get("files", [])
    ]


def _from_html(html: str, base: str) -> list[RemoteFile]:
    parser = _Anchors()
    parser.feed(html)
    files = []
    for href, text in parser.anchors:
        url = urljoin(base, href)
        parts = urlsplit(url)
        filename = text.strip() or parts.path.rsplit("/", 1)[-1]
        match = re.search(r"(?:^|&)sha256=([0-9a-f]{64})", parts.fragment)
        files.append(RemoteFile(filename=filename, url=url, sha256=match[1] if match else None))
    return files


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href")
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.anchors.append((self._href, "".join(self._text)))
            self._href = None
