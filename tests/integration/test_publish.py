"""farm publish against real registries on 127.0.0.1: pypiserver (the embedded local
registry, htpasswd), devpi-server (per-target non-volatile indexes), and a
GitLab contract server, with real twine uploads and real pip downloads back."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from farm.localregistry import DEFAULT_PORT
from tests.integration.conftest import run_farm
from tests.registries.flaky_proxy import FlakyProxy
from tests.registries.gitlab_contract import GitlabContractServer, GitlabState
from tests.registries.recorder import RecordingServer
from tests.registries.wheels import EM_X86_64, elf, make_wheel, rewrite, sha256

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Local:
    url: str
    username: str
    password: str
    packages: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    """The embedded registry, started the way users start it."""
    state = tmp_path_factory.mktemp("state")
    env = {"FARM_STATE_DIR": str(state), "FARM_PUBLISH_BACKOFF_S": "0.05"}
    port = _free_port()
    started = run_farm("registry", "serve", "--detach", "--port", str(port), env=env, timeout=60)
    assert started.returncode == 0, started.stderr
    credentials_file = state / "registry" / "credentials.json"
    assert credentials_file.stat().st_mode & 0o777 == 0o600
    credentials = json.loads(credentials_file.read_text())
    try:
        yield Local(
            url=f"http://127.0.0.1:{port}",
            username=credentials["username"],
            password=credentials["password"],
            packages=state / "registry" / "packages",
            env=env,
        )
    finally:
        run_farm("registry", "stop", env=env, timeout=60)


@dataclass
class Devpi:
    url: str
    password: str


@pytest.fixture(scope="module")
def devpi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devpi]:
    """devpi-server with no PyPI mirror (nothing leaves the machine) and a user 'farm'."""
    root = tmp_path_factory.mktemp("devpi")
    server_dir, secret = root / "server", root / "secret"
    subprocess.run(
        [
            BIN / "devpi-init",
            "--serverdir",
            server_dir,
            "--no-root-pypi",
            "--root-passwd",
            "rootpw",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run([BIN / "devpi-gen-secret", "--secretfile", secret], check=True)
    port = _free_port()
    log = (root / "server.log").open("w")
    process = subprocess.Popen(
        [
            BIN / "devpi-server",
            "--serverdir",
            server_dir,
            "--secretfile",
            secret,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            # Cheap login-token key derivation: the defaults take ~10 s to start.
            "--argon2-time-cost",
            "1",
            "--argon2-memory-cost",
            "8192",
            "--argon2-parallelism",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url)
        _devpi_put(f"{url}/farm", {"password": "devpi-farm-pw", "email": "farm@example.org"})
        yield Devpi(url=url, password="devpi-farm-pw")
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _devpi_put(url: str, body: dict[str, object], auth: tuple[str, str] | None = None) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="PUT")
    if auth:
        request.add_header(
            "Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode()
        )
    with urllib.request.urlopen(request, timeout=30):
        pass


@pytest.fixture
def config(tmp_path: Path, local: Local, devpi: Devpi) -> Path:
    down = _free_port()
    path = tmp_path / "farm.toml"
    path.write_text(
        f"""
[registries.devpi]
kind = "devpi"
url = "{devpi.url}"
user = "farm"
index = "{{target}}"
bases = ["farm/base"]
password_env = "DEVPI_PASSWORD"
username_env = "DEVPI_USER"

[registries.devpi-base]
kind = "devpi"
url = "{devpi.url}"
user = "farm"
index = "base"
password_env = "DEVPI_PASSWORD"
username_env = "DEVPI_USER"

[registries.wrong]
kind = "pypiserver"
url = "{local.url}"
password_env = "WRONG_PASSWORD"

[registries.down]
kind = "pypiserver"
url = "http://127.0.0.1:{down}"
password_env = "WRONG_PASSWORD"
"""
    )
    return path


def _publish(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_farm("publish", *argv, env=env, timeout=300)


def _pip_download(index: str, requirement: str, dest: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-cache-dir",
            "--index-url",
            index,
            requirement,
            "--dest",
            str(dest),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": os.devnull},
    )
    (downloaded,) = dest.glob("*.whl")
    return downloaded


# --- the embedded pypiserver ------------------------------------------------------


def test_local_publish_is_idempotent_and_pip_gets_the_same_bytes(
    tmp_path: Path, local: Local
) -> None:
    wheel = make_wheel(tmp_path / "a", "farm-local-probe", payload=b"first build")
    first = _publish(
        str(wheel), "--registry", "local", "--no-smoke-required", "--json", env=local.env
    )
    assert first.returncode == 0, first.stderr
    (published,) = json.loads(first.stdout)["published"]
    assert published["state"] == "uploaded" and published["sha256"] == sha256(wheel)
    assert (tmp_path / "a" / "publish-local.json").is_file()

    again = _publish(str(wheel), "--registry", "local", "--no-smoke-required", env=local.env)
    assert again.returncode == 0, again.stderr
    assert "already there" in again.stdout

    index = f"http://{local.username}:{local.password}@{local.url[7:]}/simple/"
    downloaded = _pip_download(index, "farm-local-probe==1.0", tmp_path / "dl")
    assert sha256(downloaded) == sha256(wheel)


def test_a_clashing_wheel_this_farm_did_not_build_is_refused_not_renumbered(
    tmp_path: Path, local: Local
) -> None:
    """Renumbering (PEP 427 build numbers) is for the farm's own rebuilds, shown end to end in
    test_pipeline.py; a wheel no ledger entry vouches for never becomes "build 1"."""
    first = make_wheel(tmp_path / "a", "farm-clash", payload=b"first build")
    assert _publish(str(first), "-r", "local", "--no-smoke-required", env=local.env).returncode == 0
    second = make_wheel(tmp_path / "b", "farm-clash", payload=b"second build")
    clash = _publish(str(second), "-r", "local", "--no-smoke-required", "--json", env=local.env)
    assert clash.returncode == 2, clash.stderr
    assert json.loads(clash.stdout)["error"]["kind"] == "usage"
    assert _one_error_of(clash).startswith(
        f"farm: error: {second.name}: clash: local holds another"
    )
    assert "build 1" not in clash.stderr
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [second.name]
    assert {p.name for p in local.packages.glob("farm_clash*")} == {first.name}

    repeat = _publish(str(first), "-r", "local", "--no-smoke-required", env=local.env)
    assert repeat.returncode == 0 and "already there" in repeat.stdout
    index = f"http://{local.username}:{local.password}@{local.url[7:]}/simple/"
    assert sha256(_pip_download(index, "farm-clash==1.0", tmp_path / "dl")) == sha256(first)


def test_a_wheel_without_a_passing_smoke_record_is_refused(tmp_path: Path, local: Local) -> None:
    wheel = make_wheel(tmp_path, "farm-unsmoked", payload=b"x")
    refused = _publish(str(wheel), "--registry", "local", env=local.env)
    assert refused.returncode == 1
    assert "no passing smoke record" in refused.stderr
    record = {"wheel": wheel.name, "target": "bookworm-arm64", "result": "passed"}
    (tmp_path / "smoke-bookworm-arm64.json").write_text(json.dumps(record))
    unhashed = _publish(str(wheel), "--registry", "local", env=local.env)
    assert unhashed.returncode == 1 and "no passing smoke record" in unhashed.stderr
    # Only the very bytes that passed: a wheel swapped in under the tested name has no record.
    swapped = make_wheel(tmp_path / "other", "farm-unsmoked", payload=b"not what was tested")
    record["wheel_sha256"] = sha256(swapped)
    (tmp_path / "smoke-bookworm-arm64.json").write_text(json.dumps(record))
    refused = _publish(str(wheel), "--registry", "local", env=local.env)
    assert refused.returncode == 1 and "no passing smoke record" in refused.stderr
    record["wheel_sha256"] = sha256(wheel)
    (tmp_path / "smoke-bookworm-arm64.json").write_text(json.dumps(record))
    accepted = _publish(str(wheel), "--registry", "local", env=local.env)
    assert accepted.returncode == 0, accepted.stderr


def test_wrong_password_is_one_clear_error(tmp_path: Path, local: Local, config: Path) -> None:
    wheel = make_wheel(tmp_path, "farm-wrong", payload=b"x")
    env = {**local.env, "WRONG_PASSWORD": "definitely-not-it-4711"}
    result = _publish(
        str(wheel), "-r", "wrong", "--config", str(config), "--no-smoke-required", env=env
    )
    assert result.returncode == 1
    assert "registry wrong rejected the credentials (from WRONG_PASSWORD)" in result.stderr
    assert "definitely-not-it-4711" not in result.stdout + result.stderr


def test_a_registry_that_is_down_fails_after_bounded_retries(
    tmp_path: Path, local: Local, config: Path
) -> None:
    wheel = make_wheel(tmp_path, "farm-down", payload=b"x")
    env = {**local.env, "WRONG_PASSWORD": "pw-for-nothing"}
    started = time.monotonic()
    result = _publish(
        str(wheel), "-r", "down", "--config", str(config), "--no-smoke-required", env=env
    )
    assert result.returncode == 1
    assert "registry down unreachable after 4 attempts" in result.stderr
    assert "Connection refused" in result.stderr
    assert time.monotonic() - started < 60
    assert not (tmp_path / "publish-down.json").exists()


def test_two_503s_then_success_publish_exactly_one_file(tmp_path: Path, local: Local) -> None:
    wheel = make_wheel(tmp_path, "farm-flaky", payload=b"x")
    with FlakyProxy(local.url, fail_uploads=2) as proxy:
        config = tmp_path / "farm.toml"
        config.write_text(
            f'[registries.flaky]\nkind = "generic"\nupload_url = "{proxy.url}/"\n'
            f'simple_url = "{proxy.url}/simple/"\n'
        )
        env = {**local.env, "TWINE_USERNAME": local.username, "TWINE_PASSWORD": local.password}
        result = _publish(
            str(wheel),
            "-r",
            "flaky",
            "--config",
            str(config),
            "--no-smoke-required",
            "--json",
            env=env,
        )
        assert result.returncode == 0, result.stderr
        assert proxy.uploads_seen == 3  # twine itself repeats a POST answered 5xx
    assert "503" in result.stderr
    assert sorted(p.name for p in local.packages.glob("farm_flaky*")) == [wheel.name]


def test_failures_that_outlast_twines_own_retries_are_retried_with_backoff(
    tmp_path: Path, local: Local
) -> None:
    # twine gives up after 5 POSTs answered 5xx; the farm waits, asks the index, tries again.
    state = GitlabState(fail_uploads=6)
    with GitlabContractServer(state) as server:
        config = _gitlab_config(tmp_path, server)
        wheel = make_wheel(tmp_path, "farm-stubborn", payload=b"x")
        result = run_farm(
            "publish",
            str(wheel),
            "-r",
            "gitlab",
            "--config",
            str(config),
            "--no-smoke-required",
            "--json",
            env={**local.env, "CI_JOB_TOKEN": state.job_token},
        )
        assert result.returncode == 0, result.stderr
    (published,) = json.loads(result.stdout)["published"]
    assert published["attempts"] == 2
    assert "attempt 1 failed (HTTP 503); retrying in" in result.stderr
    assert state.upload_attempts == 7 and list(state.files) == [wheel.name]


# --- devpi: an index per target ---------------------------------------------------


def test_devpi_routes_targets_to_non_volatile_indexes(
    tmp_path: Path, local: Local, devpi: Devpi, config: Path
) -> None:
    env = {**local.env, "DEVPI_USER": "farm", "DEVPI_PASSWORD": devpi.password}
    common = ("--config", str(config), "--no-smoke-required")
    dependency = make_wheel(tmp_path / "dep", "farm-dep", payload=b"dependency")
    assert _publish(str(dependency), "-r", "devpi-base", *common, env=env).returncode == 0

    jp6 = make_wheel(tmp_path / "jp6", "farm-routed", payload=b"jetpack6", requires=("farm-dep",))
    bookworm = make_wheel(
        tmp_path / "bw", "farm-routed", payload=b"bookworm", requires=("farm-dep",)
    )
    assert jp6.name == bookworm.name and sha256(jp6) != sha256(bookworm)
    for wheel, target in ((jp6, "jetpack6"), (bookworm, "bookworm-arm64")):
        result = _publish(str(wheel), "-r", "devpi", "--target", target, *common, env=env)
        assert result.returncode == 0, result.stderr
        assert f"created devpi index {devpi.url}/farm/{target}" in result.stderr

    again = _publish(str(jp6), "-r", "devpi", "--target", "jetpack6", *common, env=env)
    assert again.returncode == 0 and "already there" in again.stdout

    downloaded = _pip_download(
        f"{devpi.url}/farm/jetpack6/+simple/", "farm-routed", tmp_path / "dl"
    )
    assert sha256(downloaded) == sha256(jp6)
    # One --index-url serves the dependency too, inherited through bases=.
    target_dir = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-cache-dir",
            "--target",
            str(target_dir),
            "--index-url",
            f"{devpi.url}/farm/bookworm-arm64/+simple/",
            "farm-routed",
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": os.devnull},
    )
    assert (target_dir / "farm_routed" / "payload.bin").read_bytes() == b"bookworm"
    assert (target_dir / "farm_dep" / "payload.bin").read_bytes() == b"dependency"
    # Other bytes under a taken name, of a wheel this farm did not build: refused, never
    # published over the first nor renumbered (the farm's own rebuilds are: test_pipeline).
    clash = _publish(str(bookworm), "-r", "devpi", "--target", "jetpack6", *common, env=env)
    assert clash.returncode == 2 and ": clash: devpi holds another" in clash.stderr


def test_devpi_rejects_a_wrong_password_and_a_stopped_server_is_named(
    tmp_path: Path, local: Local, devpi: Devpi, config: Path
) -> None:
    wheel = make_wheel(tmp_path, "farm-devpi-wrong", payload=b"x")
    common = ("--config", str(config), "--no-smoke-required", "--target", "jetpack7")
    env = {**local.env, "DEVPI_USER": "farm", "DEVPI_PASSWORD": "not-the-devpi-password"}
    missing = _publish(str(wheel), "-r", "devpi", *common, env=env)
    assert missing.returncode == 1
    assert "devpi refused creating index" in missing.stderr and "HTTP 403" in missing.stderr
    _devpi_put(
        f"{devpi.url}/farm/jetpack7",
        {"type": "stage", "bases": [], "volatile": False},
        auth=("farm", devpi.password),
    )
    wrong = _publish(str(wheel), "-r", "devpi", *common, env=env)
    assert wrong.returncode == 1
    assert "devpi rejected the credentials for uploading" in wrong.stderr
    assert "HTTP 401" in wrong.stderr and "not-the-devpi-password" not in wrong.stderr
    moved = tmp_path / "moved.toml"
    moved.write_text(config.read_text().replace(devpi.url, f"http://127.0.0.1:{_free_port()}"))
    down = _publish(str(wheel), "-r", "devpi", "--config", str(moved), *common[2:], env=env)
    assert down.returncode == 1
    assert "registry devpi unreachable after 4 attempts" in down.stderr


def test_a_volatile_devpi_index_is_refused(
    tmp_path: Path, local: Local, devpi: Devpi, config: Path
) -> None:
    _devpi_put(
        f"{devpi.url}/farm/jetpack5",
        {"type": "stage", "bases": [], "volatile": True},
        auth=("farm", devpi.password),
    )
    env = {**local.env, "DEVPI_USER": "farm", "DEVPI_PASSWORD": devpi.password}
    wheel = make_wheel(tmp_path, "farm-volatile", payload=b"x")
    result = _publish(
        str(wheel),
        "-r",
        "devpi",
        "--target",
        "jetpack5",
        "--config",
        str(config),
        "--no-smoke-required",
        env=env,
    )
    assert result.returncode == 1
    assert "is volatile" in result.stderr


# --- GitLab, by its documented contract ---------------------------------------------


def _gitlab_config(tmp_path: Path, server: GitlabContractServer) -> Path:
    path = tmp_path / "gitlab.toml"
    path.write_text(f'[registries.gitlab]\nkind = "gitlab"\nurl = "{server.url}"\nproject = "7"\n')
    return path


def test_gitlab_publish_with_the_ci_job_token(tmp_path: Path, local: Local) -> None:
    state = GitlabState(fail_uploads=1)
    with GitlabContractServer(state) as server:
        config = _gitlab_config(tmp_path, server)
        env = {**local.env, "CI_JOB_TOKEN": state.job_token}
        wheel = make_wheel(tmp_path / "a", "Farm.GitLab_Probe", payload=b"one")
        common = ("-r", "gitlab", "--config", str(config), "--no-smoke-required")
        first = run_farm("publish", str(wheel), *common, env=env)
        assert first.returncode == 0, first.stderr
        assert state.upload_attempts == 2  # one 503 (twine repeats it at once), then 201
        assert run_farm("publish", str(wheel), *common, env=env).returncode == 0
        assert state.upload_attempts == 2  # found by the normalised simple lookup: no upload

        other = make_wheel(tmp_path / "b", "Farm.GitLab_Probe", payload=b"two")
        clash = run_farm("publish", str(other), *common, env=env)
        assert clash.returncode == 2 and ": clash: gitlab holds another" in clash.stderr
        assert other.name.replace("-1.0-", "-1.0-1-") not in state.files

        reader = run_farm(
            "publish",
            str(make_wheel(tmp_path / "c", "farm-reader", payload=b"r")),
            *common,
            env={**local.env, "TWINE_PASSWORD": state.read_only_token},
        )
        assert reader.returncode == 1
        assert "rejected the credentials for uploading" in reader.stderr
        assert "HTTP 403" in reader.stderr
        assert state.read_only_token not in reader.stdout + reader.stderr


def test_no_token_appears_in_anything_the_farm_prints(tmp_path: Path, local: Local) -> None:
    state = GitlabState(job_token="glcbt-KNOWN-SECRET-0123456789")
    seen: list[str] = []
    with GitlabContractServer(state) as server:
        config = _gitlab_config(tmp_path, server)
        wheel = make_wheel(tmp_path, "farm-secret-probe", payload=b"s")
        common = ("-r", "gitlab", "--config", str(config), "--no-smoke-required")
        env = {**local.env, "CI_JOB_TOKEN": state.job_token}
        for extra in (("--dry-run",), ("--dry-run", "--json"), (), ("--json",), ()):
            result = run_farm("publish", str(wheel), *common, *extra, env=env)
            assert result.returncode == 0, result.stderr
            seen += [result.stdout, result.stderr]
        wrong = run_farm(
            "publish",
            str(make_wheel(tmp_path / "w", "farm-w", payload=b"w")),
            *common,
            env={**local.env, "CI_JOB_TOKEN": "glcbt-WRONG-SECRET-9876543210"},
        )
        assert wrong.returncode == 1
        seen += [wrong.stdout, wrong.stderr]
        seen += [record.read_text() for record in tmp_path.rglob("*.json")]
    text = "\n".join(seen)
    assert "twine upload" in text  # the commands were shown
    assert state.job_token not in text
    assert "glcbt-WRONG-SECRET-9876543210" not in text
    assert local.password not in text


# --- what users paste -------------------------------------------------------------


def test_the_uv_snippet_resolves_the_private_wheel_for_aarch64(
    tmp_path: Path, local: Local
) -> None:
    wheel = make_wheel(tmp_path / "dist", "farm-uv-probe", "1.0", payload=b"for uv")
    published = _publish(str(wheel), "-r", "local", "--no-smoke-required", env=local.env)
    assert published.returncode == 0, published.stderr
    made = run_farm(
        "index-config",
        "--target",
        "bookworm-arm64",
        "--tool",
        "uv",
        "--package",
        "farm-uv-probe",
        env=local.env,
    )
    assert made.returncode == 0, made.stderr
    assert local.password not in made.stdout
    project = tmp_path / "consumer"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "consumer"\nversion = "0"\nrequires-python = ">=3.10"\n'
        'dependencies = ["farm-uv-probe"]\n\n'
        # Resolve for the Jetson platform only: the probe exists nowhere else.
        "[tool.uv]\nenvironments = [\"platform_machine == 'aarch64' and sys_platform == 'linux'\"]"
        "\n\n" + made.stdout
    )
    stem = "UV_INDEX_LOCAL_BOOKWORM_ARM64"
    assert f"{stem}_PASSWORD" in made.stdout
    locked = subprocess.run(
        [BIN / "uv", "lock", "--no-cache"],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, f"{stem}_USERNAME": local.username, f"{stem}_PASSWORD": local.password},
    )
    assert locked.returncode == 0, locked.stderr
    lock = (project / "uv.lock").read_text()
    assert f'source = {{ registry = "{local.url}/simple/" }}' in lock
    assert f"sha256:{sha256(wheel)}" in lock


# --- credentials and uploads only where the user pointed ----------------------------

NOT_RUNNING = "farm: error: the local registry is not running: farm registry serve --detach"


@pytest.fixture
def stopped(tmp_path: Path) -> Iterator[tuple[dict[str, str], list[RecordingServer]]]:
    """A state directory whose registry ran once (credentials exist) and is stopped, with a
    stale server.json naming a listener, and a listener on the old default port if free:
    the farm must send nothing to either."""
    env = {"FARM_STATE_DIR": str(tmp_path / "state"), "FARM_PUBLISH_BACKOFF_S": "0.05"}
    started = run_farm("registry", "serve", "--detach", "--port", str(_free_port()), env=env)
    assert started.returncode == 0, started.stderr
    assert run_farm("registry", "stop", env=env).returncode == 0
    with contextlib.ExitStack() as stack:
        listeners = [stack.enter_context(RecordingServer())]
        with contextlib.suppress(OSError):  # someone else's server may hold it
            listeners.append(stack.enter_context(RecordingServer(port=DEFAULT_PORT)))
        stale = {"url": listeners[0].url, "pid": _dead_pid(), "port": 0, "fallback": False}
        (tmp_path / "state" / "registry" / "server.json").write_text(json.dumps(stale))
        yield env, listeners


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _one_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_stopped_local_registry_is_an_error_not_a_guessed_url(
    tmp_path: Path, stopped: tuple[dict[str, str], list[RecordingServer]]
) -> None:
    env, listeners = stopped
    wheel = make_wheel(tmp_path / "w", "farm-nowhere", payload=b"x")
    for extra in ((), ("--dry-run",), ("--json",)):
        result = _publish(str(wheel), "-r", "local", "--no-smoke-required", *extra, env=env)
        assert result.returncode == 3
        assert _one_error(result) == NOT_RUNNING
    config = run_farm("index-config", "-t", "jetpack6", "--tool", "pip", env=env)
    assert config.returncode == 3 and _one_error(config) == NOT_RUNNING
    listed = run_farm("registry", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)["registries"]
    assert row["name"] == "local" and row["simple_url"] is None
    assert all(listener.requests == [] for listener in listeners)


def test_build_with_publish_to_a_stopped_registry_fails_before_building(
    tmp_path: Path, stopped: tuple[dict[str, str], list[RecordingServer]]
) -> None:
    env, listeners = stopped
    out = tmp_path / "out"
    started = time.monotonic()
    build = run_farm(
        "build", "demo", "--target", "bookworm-arm64", "--publish", "local",
        "--output-dir", str(out), env=env,
    )  # fmt: skip
    assert build.returncode == 3 and _one_error(build) == NOT_RUNNING
    assert time.monotonic() - started < 30 and not out.exists()
    assert not (tmp_path / "state" / "ledger").exists()
    nightly = run_farm("nightly", "-r", "local", "--package", "demo", "--dry-run", env=env)
    assert nightly.returncode == 3 and _one_error(nightly) == NOT_RUNNING
    assert all(listener.requests == [] for listener in listeners)


def test_a_foreground_registry_counts_as_running_until_it_is_stopped(tmp_path: Path) -> None:
    env = {**os.environ, "FARM_STATE_DIR": str(tmp_path / "state")}
    port = _free_port()
    server = subprocess.Popen(
        [BIN / "farm", "registry", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        status = _wait_until_running(env)
        assert status["url"] == f"http://127.0.0.1:{port}"
        wheel = make_wheel(tmp_path / "w", "farm-foreground", payload=b"x")
        published = _publish(str(wheel), "-r", "local", "--no-smoke-required", env=env)
        assert published.returncode == 0, published.stderr
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr
    assert "Traceback" not in stderr
    after = run_farm("registry", "status", "--json", env=env)
    assert after.returncode == 1 and json.loads(after.stdout)["running"] is False
    with pytest.raises(ProcessLookupError):
        os.kill(status["pid"], 0)


def _wait_until_running(env: dict[str, str]) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while True:
        status = run_farm("registry", "status", "--json", env=env)
        if status.returncode == 0:
            return dict(json.loads(status.stdout))
        assert time.monotonic() < deadline, status.stderr
        time.sleep(0.3)


def test_a_profile_named_local_never_gets_the_generated_password(
    tmp_path: Path, local: Local
) -> None:
    with RecordingServer() as elsewhere:
        config = tmp_path / "farm.toml"
        config.write_text(f'[registries.local]\nkind = "pypiserver"\nurl = "{elsewhere.url}"\n')
        wheel = make_wheel(tmp_path / "w", "farm-elsewhere", payload=b"x")
        result = _publish(
            str(wheel), "-r", "local", "--config", str(config), "--no-smoke-required",
            env={**local.env, "TWINE_USERNAME": "someone", "TWINE_PASSWORD": "their-own-pw"},
        )  # fmt: skip
    assert result.returncode != 0
    assert elsewhere.requests, "the configured profile was used"
    sent = {seen.authorization for seen in elsewhere.requests} - {None}
    decoded = {base64.b64decode(value.split()[1]).decode() for value in sent}
    assert decoded == {"someone:their-own-pw"}
    assert local.password not in result.stdout + result.stderr


# --- a wheel is checked before anything is sent ---------------------------------------

AARCH64_TAG = "cp310-cp310-manylinux_2_35_aarch64"


def _garbage(directory: Path) -> Path:
    directory.mkdir(parents=True)
    path = directory / "farm_bad-1.0-py3-none-any.whl"
    path.write_bytes(b"this is not a zip file")
    return path


def _truncated(directory: Path) -> Path:
    path = make_wheel(directory, "farm-bad", payload=b"x" * 4096)
    path.write_bytes(path.read_bytes()[:-200])
    return path


def _a_directory(directory: Path) -> Path:
    path = directory / "farm_bad-1.0-py3-none-any.whl"
    path.mkdir(parents=True)
    return path


def _tampered(directory: Path) -> Path:
    return rewrite(make_wheel(directory, "farm-bad", payload=b"x"), {"farm_bad/payload.bin": b"y"})


def _escaping(directory: Path) -> Path:
    return rewrite(make_wheel(directory, "farm-bad"), {"../../etc/cron.d/farm": b"* * * * *"})


def _x86_64_code(directory: Path) -> Path:
    return make_wheel(
        directory, "farm-bad", tag=AARCH64_TAG, files={"farm_bad/_c.so": elf(EM_X86_64)}
    )


BAD_WHEELS = {
    "garbage": (_garbage, "not a zip: File is not a zip file"),
    "truncated": (_truncated, "not a zip: File is not a zip file"),
    "directory": (_a_directory, "unreadable: is a directory"),
    "tampered": (_tampered, "RECORD: farm_bad/payload.bin: sha256 differs from RECORD"),
    "escaping": (_escaping, "unsafe path: ../../etc/cron.d/farm would land outside the target"),
    "x86_64": (
        _x86_64_code,
        "architecture: farm_bad/_c.so is x86_64 code, the wheel is tagged aarch64",
    ),
}


def _index_lists(local: Local, project: str) -> bool:
    request = urllib.request.Request(f"{local.url}/simple/{project}/")
    token = base64.b64encode(f"{local.username}:{local.password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return ".whl" in response.read().decode()
    except urllib.error.HTTPError as error:
        assert error.code == 404
        return False


@pytest.mark.parametrize("kind", sorted(BAD_WHEELS))
def test_a_bad_wheel_is_refused_before_the_index_is_asked(
    tmp_path: Path, local: Local, kind: str
) -> None:
    make, rule = BAD_WHEELS[kind]
    wheel = make(tmp_path / "w")
    result = _publish(str(wheel), "-r", "local", "--no-smoke-required", env=local.env)
    assert result.returncode == 2
    assert _one_error(result) == f"farm: error: {wheel.name}: {rule}"
    assert not any(local.packages.glob("farm_bad*")) and not _index_lists(local, "farm-bad")
    assert not (tmp_path / "w" / "publish-local.json").exists()
    inspected = run_farm("inspect", str(wheel), "-t", "jetpack6", "--json", env=local.env)
    if kind != "directory":  # farm inspect wants a file
        assert inspected.returncode == 1, inspected.stderr
        assert rule in json.loads(inspected.stdout)["problems"]


def test_one_bad_wheel_among_several_sends_none(tmp_path: Path) -> None:
    good = make_wheel(tmp_path / "good", "farm-good", payload=b"fine")
    bad = _tampered(tmp_path / "bad")
    with RecordingServer() as index:
        config = tmp_path / "farm.toml"
        config.write_text(
            f'[registries.rec]\nkind = "generic"\nupload_url = "{index.url}/"\n'
            f'simple_url = "{index.url}/simple/"\n'
        )
        env = {"TWINE_USERNAME": "u", "TWINE_PASSWORD": "p-never-sent"}
        for extra in ((), ("--dry-run",)):
            result = _publish(
                str(good), str(bad), "-r", "rec", "--config", str(config),
                "--no-smoke-required", *extra, env=env,
            )  # fmt: skip
            assert result.returncode == 2
            assert _one_error(result).startswith(f"farm: error: {bad.name}: RECORD: ")
    assert index.requests == []


def test_the_wheels_target_must_get_a_compatible_verdict(tmp_path: Path, local: Local) -> None:
    # Built for Python 3.11: jetpack6 has 3.10. Named by --target or by the smoke record.
    wheel = make_wheel(tmp_path, "farm-py311", tag="cp311-cp311-manylinux_2_35_aarch64")
    line = (
        f"farm: error: {wheel.name}: incompatible with jetpack6: wheel is for cp311, "
        "target jetpack6 has python 3.10"
    )
    explicit = _publish(
        str(wheel), "-r", "local", "-t", "jetpack6", "--no-smoke-required", env=local.env
    )
    assert explicit.returncode == 2 and _one_error(explicit) == line
    record = {"wheel": wheel.name, "target": "jetpack6", "result": "passed"}
    record["wheel_sha256"] = sha256(wheel)
    (tmp_path / "smoke-jetpack6.json").write_text(json.dumps(record))
    recorded = _publish(str(wheel), "-r", "local", env=local.env)
    assert recorded.returncode == 2 and _one_error(recorded) == line
    assert not _index_lists(local, "farm-py311")
    fits = _publish(str(wheel), "-r", "local", "-t", "bookworm-arm64", env=local.env)
    assert fits.returncode == 0, fits.stderr


def test_a_wheel_whose_provenance_differs_from_its_ledger_entry_is_refused(
    tmp_path: Path, local: Local
) -> None:
    """A farm-built wheel is published only as the ledger recorded it: a copy whose provenance
    was altered (a valid wheel, RECORD and all) is refused before the index is asked."""
    from farm.provenance import read_provenance, stamp_wheel

    built = run_farm(
        "build", "demo", "--target", "bookworm-arm64", "--output-dir", str(tmp_path / "out"),
        "--json", env=local.env,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = Path(json.loads(built.stdout)["wheel"])
    record = read_provenance(wheel)
    assert record is not None

    forged_dir = tmp_path / "forged"
    forged_dir.mkdir()
    forged = forged_dir / wheel.name
    forged.write_bytes(wheel.read_bytes())
    stamp_wheel(forged, {**record, "strategy": "cross"}, record["source_date_epoch"])
    before = {p.name for p in local.packages.iterdir()}
    refused = _publish(str(forged), "-r", "local", "--no-smoke-required", env=local.env)
    assert refused.returncode == 2, refused.stderr
    (line,) = [x for x in refused.stderr.splitlines() if x.startswith("farm: error:")]
    assert line.startswith(f"farm: error: {wheel.name}: provenance: ")
    assert "strategy" in line
    assert {p.name for p in local.packages.iterdir()} == before

    # Provenance emptied, or naming a key this farm never built: not one of its builds, so
    # neither published nor renumbered ("an earlier build") although the index lacks it.
    for label, altered in (("emptied", {}), ("other key", {**record, "build_key": "0" * 64})):
        stamp_wheel(forged, altered, record["source_date_epoch"])
        refused = _publish(str(forged), "-r", "local", "--no-smoke-required", env=local.env)
        assert refused.returncode == 2, (label, refused.stderr)
        assert "this farm built this release as build key" in _one_error(refused), label
        assert {p.name for p in local.packages.iterdir()} == before, label

    genuine = _publish(str(wheel), "-r", "local", env=local.env)
    assert genuine.returncode == 0, genuine.stderr
    assert (local.packages / wheel.name).is_file()
    # Published, the genuine wheel is there; a forged one of its name is still refused.
    again = _publish(str(forged), "-r", "local", "--no-smoke-required", env=local.env)
    assert again.returncode == 2 and "build 1" not in again.stderr


def test_a_registry_refusal_reason_is_in_the_error_line(tmp_path: Path, local: Local) -> None:
    """GitLab's 400 body ("File is too large", an instance limit farm cannot know) belongs in
    the one error line, not only in the log above it; no colour codes, no traceback."""
    state = GitlabState(max_file_size=100)
    with GitlabContractServer(state) as server:
        config = _gitlab_config(tmp_path, server)
        env = {**local.env, "CI_JOB_TOKEN": state.job_token, "FARM_PUBLISH_ATTEMPTS": "1"}
        wheel = make_wheel(tmp_path / "a", "farm-too-big", payload=b"x" * 5000)
        result = run_farm(
            "publish", str(wheel), "-r", "gitlab", "--config", str(config),
            "--no-smoke-required", env=env,
        )  # fmt: skip
    assert result.returncode == 1, result.stderr
    line = _one_error_of(result)
    assert "HTTP 400" in line and "File is too large" in line, line
    assert "\x1b[" not in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def _one_error_of(result: subprocess.CompletedProcess[str]) -> str:
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("farm: error:")]
    return line


def test_publish_waits_for_no_one_while_a_build_holds_the_state(
    tmp_path: Path, local: Local
) -> None:
    """farm publish reads the ledger to tell the farm's builds from others: while another
    farm run holds the state directory it stops at once (exit 3) naming the holder."""
    from farm.ledger import Ledger

    wheel = make_wheel(tmp_path, "farm-locked", payload=b"x")
    with Ledger(Path(local.env["FARM_STATE_DIR"])).locked("farm build demo --target t"):
        held = _publish(str(wheel), "-r", "local", "--no-smoke-required", env=local.env)
    assert held.returncode == 3, held.stderr
    assert "is in use by pid" in _one_error_of(held) and "farm build demo" in held.stderr
    assert not _index_lists(local, "farm-locked")
