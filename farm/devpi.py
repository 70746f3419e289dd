"""devpi's per-target indexes: created on first publish, and always non-volatile.

devpi-server's JSON API (no devpi-client needed): ``GET /USER/INDEX`` gives
the index configuration; ``PUT /USER/INDEX`` with
``{"type": "stage", "bases": [...], "volatile": false}`` creates it, with
HTTP Basic auth as the user (200; 409 when it exists). A volatile index lets
an upload replace a file under the same name, which would break the farm's
promise that one file name means one content, so publishing to one is refused.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable

from farm.credentials import Credentials
from farm.errors import CredentialsRejected, RegistryError
from farm.httpclient import open_url
from farm.registries import DevpiRegistry, IndexLocation
from farm.simpleindex import TransientFailure


def ensure_index(
    location: IndexLocation,
    profile: DevpiRegistry,
    credentials: Credentials | None,
    on_line: Callable[[str], None],
) -> None:
    """Create the target's index if it is missing; refuse a volatile one."""
    index_url = location.upload_url.rstrip("/")
    config = _request("GET", index_url, credentials, None)
    if config is None:
        body = {"type": "stage", "bases": list(profile.bases), "volatile": False}
        _request("PUT", index_url, credentials, body)
        on_line(f"created devpi index {index_url} (bases: {', '.join(profile.bases) or 'none'})")
        return
    result = config.get("result")
    if not isinstance(result, dict) or result.get("volatile", True):
        raise RegistryError(
            f"devpi index {index_url} is volatile: an upload could replace a published file",
            hint="make it non-volatile: devpi index USER/INDEX volatile=False",
        )


def _request(
    method: str, url: str, credentials: Credentials | None, body: dict[str, object] | None
) -> dict[str, object] | None:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    try:
        with open_url(
            url, credentials=credentials, method=method, data=data, headers=headers
        ) as response:
            document = json.loads(response.read() or b"{}")
    except ValueError:
        raise RegistryError(
            f"devpi {method} {url}: the answer is not JSON; is this a devpi server?"
        ) from None
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 404 and method == "GET":
            return None
        if exc.code in (401, 403):
            source = credentials.source if credentials else "none found"
            action = "creating" if method == "PUT" else "reading"
            raise CredentialsRejected(
                f"devpi refused {action} index {url} (HTTP {exc.code}; credentials from "
                f"{source}): a wrong password, or a user that does not own the index",
                hint="check the password; the profile's user must exist (devpi user -c USER)",
            ) from None
        raise RegistryError(f"devpi {method} {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise TransientFailure(f"{url}: {getattr(exc, 'reason', exc)}") from None
    if not isinstance(document, dict):
        raise RegistryError(f"devpi {method} {url}: the answer is not a JSON object")
    return document
