"""The one way farm makes an HTTP request of its own: credentials never leave their origin.

Index reads (listings, file hashes), devpi's index API and PyPI's release list all
open URLs here. Credentials are bound to the **origin** (scheme, host, port) of
the URL the user configured, the way pip and requests treat them:

* a request to another origin (a listing's file link on a CDN or object
  storage, as GitLab's package downloads are) carries no ``Authorization``;
* a redirect to another origin drops it, and so does a redirect from https to
  http; a redirect within the origin (a trailing slash, ``/simple`` to
  ``/simple/``) or from http to https on the same host and default ports keeps it.

The CA bundle is the host's (:func:`farm.network.ca_bundle`).
"""

from __future__ import annotations

import base64
import ipaddress
import ssl
import urllib.request
from typing import IO, Any
from urllib.parse import urlsplit

from farm.credentials import Credentials
from farm.network import ca_bundle

_DEFAULT_PORTS = {"http": 80, "https": 443}
AUTHORIZATION = "Authorization"


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL; the default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme, 0)


def plain_http_host(url: str) -> str | None:
    """The host of a plain-http URL that is not this machine's loopback (credentials sent
    there can be read on the way, and pip trusts it only with --trusted-host); else None."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "http" or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return host


def keeps_credentials(old: str, new: str) -> bool:
    """Whether a redirect from ``old`` to ``new`` may carry the credentials sent to ``old``
    (requests' ``should_strip_auth``: same origin, or an upgrade to https on the same host
    with default ports)."""
    before, after = origin(old), origin(new)
    if before == after:
        return True
    upgrade = before[0] == "http" and after[0] == "https" and before[1] == after[1]
    return upgrade and before[2] == 80 and after[2] == 443


class _OriginBoundRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        follow = super().redirect_request(req, fp, code, msg, headers, newurl)
        if follow is not None and not keeps_credentials(req.full_url, newurl):
            follow.remove_header(AUTHORIZATION)
        return follow


def open_url(
    url: str,
    *,
    credentials: Credentials | None = None,
    credentials_origin: str | None = None,
    method: str = "GET",
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> Any:
    """``urlopen`` of ``url``; ``credentials`` go with it only when its origin is that of
    ``credentials_origin`` (default: ``url`` itself), and follow redirects only within it.
    HTTP errors raise ``urllib.error.HTTPError`` as ``urlopen`` does."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310 - callers check the scheme
    bound = credentials_origin or url
    if credentials is not None and origin(url) == origin(bound):
        token = base64.b64encode(f"{credentials.username}:{credentials.password}".encode())
        request.add_header(AUTHORIZATION, f"Basic {token.decode()}")
    context = ssl.create_default_context(cafile=ca_bundle())
    opener = urllib.request.build_opener(
        _OriginBoundRedirects(), urllib.request.HTTPSHandler(context=context)
    )
    return opener.open(request, timeout=timeout)
