"""Credentials go only to the origin the user configured: never across a redirect to another
host or port, never to a listing's file link elsewhere (GitLab's downloads redirect to object
storage as a matter of course). Real servers on 127.0.0.1, the installed farm command, one
profile per registry kind."""

from __future__ import annotations

import fcntl
import socket
import struct
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from farm.credentials import Credentials
from farm.errors import RegistryError
from farm.httpclient import keeps_credentials
from farm.simpleindex import download_sha256, project_files
from tests.integration.conftest import run_farm
from tests.registries.recorder import RecordingServer
from tests.registries.redirecting import RedirectingIndex
from tests.registries.wheels import make_wheel

pytestmark = pytest.mark.integration
USER, PASSWORD = "farm-user", "s3cret-not-for-elsewhere"
PROFILES = {
    "gitlab": 'kind = "gitlab"\nurl = "{url}"\nproject = "7"\n',
    "devpi": 'kind = "devpi"\nurl = "{url}"\nuser = "farm"\nindex = "jp6"\n',
    "pypiserver": 'kind = "pypiserver"\nurl = "{url}"\n',
    "generic": 'kind = "generic"\nupload_url = "{url}/upload/"\nsimple_url = "{url}/simple/"\n',
}
CREDENTIALS = Credentials(username=USER, password=PASSWORD, source="test")


def _publish(kind: str, index: RedirectingIndex, tmp_path: Path, wheel: Path) -> str:
    config = tmp_path / "farm.toml"
    config.write_text(f"[registries.{kind}]\n" + PROFILES[kind].format(url=index.url))
    env = {
        "TWINE_USERNAME": USER,
        "TWINE_PASSWORD": PASSWORD,
        "FARM_PUBLISH_ATTEMPTS": "1",
        "FARM_PUBLISH_BACKOFF_S": "0.05",
    }
    result = run_farm(
        "publish", str(wheel), "-r", kind, "--config", str(config), "--no-smoke-required",
        env=env, timeout=300,
    )  # fmt: skip
    return result.stdout + result.stderr


@pytest.mark.parametrize("kind", sorted(PROFILES))
@pytest.mark.parametrize("mode", ["redirect", "links"])
def test_no_credentials_reach_another_origin(kind: str, mode: str, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "w", "farm-origin-probe", payload=b"x")
    with RecordingServer() as elsewhere, RedirectingIndex(elsewhere.url, mode, wheel.name) as index:
        output = _publish(kind, index, tmp_path, wheel)
    assert PASSWORD not in output
    assert any(seen.authorization for seen in index.seen), index.seen  # they were sent, there
    assert elsewhere.requests, "the index never sent the farm elsewhere"
    assert [seen for seen in elsewhere.requests if seen.authorization] == []


def test_the_index_readers_bind_credentials_to_the_index(tmp_path: Path) -> None:
    with RecordingServer() as elsewhere:
        with RedirectingIndex(elsewhere.url, "redirect") as index:
            assert project_files(f"{index.url}/simple", "probe", CREDENTIALS) == {}
        with RedirectingIndex(elsewhere.url, "links", "probe-1.0.whl") as index:
            (listed,) = project_files(f"{index.url}/simple", "probe", CREDENTIALS).values()
            assert listed.url.startswith(elsewhere.url) and listed.sha256 is None
            with pytest.raises(RegistryError, match="the index lists it, but HTTP 404"):
                download_sha256(listed.url, CREDENTIALS, index_url=f"{index.url}/simple/")
    assert len(elsewhere.requests) == 2
    assert {seen.authorization for seen in elsewhere.requests} == {None}


@pytest.mark.parametrize(
    ("old", "new", "kept"),
    [
        ("https://idx.example/simple/a", "https://idx.example/simple/a/", True),
        ("https://idx.example/a", "https://IDX.example:443/b", True),
        ("http://idx.example/a", "https://idx.example/a", True),  # upgrade, default ports
        ("https://idx.example/a", "http://idx.example/a", False),  # downgrade
        ("https://idx.example/a", "https://bucket.example/a", False),
        ("https://idx.example/a", "https://idx.example:8443/a", False),
        ("http://idx.example:8080/a", "https://idx.example/a", False),
    ],
)
def test_which_redirects_keep_credentials(old: str, new: str, kept: bool) -> None:
    assert keeps_credentials(old, new) is kept


def _bridge_address() -> str:
    """This machine's address on docker's bridge (docker0): not loopback, yet reachable.
    Read with the SIOCGIFADDR ioctl, so no tool beyond the docker engine is needed."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("256s", b"docker0")
        answer = fcntl.ioctl(probe.fileno(), 0x8915, request)  # SIOCGIFADDR
    return socket.inet_ntoa(answer[20:24])


@pytest.mark.parametrize("allowed", [False, True])
def test_credentials_over_plain_http_to_another_host_need_an_opt_in(
    tmp_path: Path, allowed: bool
) -> None:
    host = _bridge_address()
    recorder = RecordingServer()
    recorder.server.server_close()
    recorder.server = ThreadingHTTPServer((host, 0), recorder.server.RequestHandlerClass)
    recorder.url = f"http://{host}:{recorder.server.server_port}"
    recorder._thread = threading.Thread(target=recorder.server.serve_forever, daemon=True)
    config = tmp_path / "farm.toml"
    opt_in = "allow_insecure_http = true\n" if allowed else ""
    config.write_text(f'[registries.plain]\nkind = "pypiserver"\nurl = "{recorder.url}"\n{opt_in}')
    wheel = make_wheel(tmp_path / "w", "farm-plain-probe", payload=b"x")
    env = {"TWINE_USERNAME": USER, "TWINE_PASSWORD": PASSWORD, "FARM_PUBLISH_ATTEMPTS": "1"}
    with recorder:
        result = run_farm(
            "publish", str(wheel), "-r", "plain", "--config", str(config), "--no-smoke-required",
            env=env, timeout=300,
        )  # fmt: skip
    errors = [line for line in result.stderr.splitlines() if line.startswith("farm: error:")]
    if not allowed:
        assert result.returncode == 2
        assert errors == [
            f"farm: error: registry plain: credentials would go over plain http to {host}, "
            "where anyone on the way can read them"
        ]
        assert recorder.requests == []
    else:
        warning = f"registry plain: sending credentials over plain http to {host}"
        assert warning in result.stderr
        assert recorder.requests, "nothing reached the opted-in http registry"
    assert PASSWORD not in result.stdout + result.stderr
