"""Stopping farm stops what it started; host faults end in one line and exit 3.

Each test runs the installed farm against the real engine and QEMU, brings
the fault about for real (a signal, a time limit, a full file system, the
daemon's socket cut, a file where a directory belongs) and checks what a
user would: the exit code, one plain error line, no traceback, no container
or BuildKit client left running, the state lock free, no partial output
that looks like a result, and nothing already built lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from farm.localregistry import LocalRegistry
from tests.integration.conftest import REPO, build_through_smoke, farm_command, run_farm
from tests.integration.engine_proxy import EngineRelay

pytestmark = pytest.mark.integration

TARGET = "bookworm-arm64"


# --- helpers ------------------------------------------------------------------------


class Farm:
    """``farm ARGV`` started in the background, its stderr collected in a file."""

    def __init__(self, tmp_path: Path, *argv: str, env: dict[str, str] | None = None) -> None:
        self.stderr_path = tmp_path / f"farm-{time.monotonic_ns()}.err"
        with self.stderr_path.open("w") as stderr:
            self.process = subprocess.Popen(
                [farm_command(), *argv],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env={**os.environ, **(env or {})},
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if self.process.poll() is not None:
                pytest.fail(
                    f"farm ended ({self.process.returncode}) before {what}: {self.stderr()[-3000:]}"
                )
            if time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"no {what} within {timeout:.0f} s: {self.stderr()[-3000:]}")
            time.sleep(0.5)

    def stop(self, signum: int) -> tuple[int, str]:
        os.kill(self.pid, signum)
        try:
            self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"farm did not end within 90 s of {signum}: {self.stderr()[-2000:]}")
        return self.process.returncode, self.stderr()


def containers(pid: int, stage: str | None = None) -> list[str]:
    """Containers, running or not, that the farm process ``pid`` started (for ``stage``)."""
    filters = ["--filter", f"label=farm.pid={pid}"]
    if stage:
        filters += ["--filter", f"label=farm.stage={stage}"]
    result = subprocess.run(
        ["docker", "ps", "--all", *filters, "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()


def eventually(check: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def clients_mentioning(marker: str) -> list[str]:
    """docker client processes whose command line holds ``marker`` (a test's own path)."""
    result = subprocess.run(["pgrep", "-a", "-f", marker], capture_output=True, text=True)
    return [line for line in result.stdout.splitlines() if "docker" in line]


def lock_is_free(state: Path) -> bool:
    with (state / "farm.lock").open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
    return True


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr[-3000:]
    return [line for line in stderr.splitlines() if line.startswith("farm: error:")]


def assert_stopped_by(code: int, stderr: str, signum: int, doing: str) -> None:
    name = signal.Signals(signum).name
    assert code == 128 + signum, stderr[-3000:]
    assert error_lines(stderr) == [f"farm: error: stopped by {name} while {doing}"]
    assert stderr.rstrip().splitlines()[-1].startswith("farm: error: stopped by")


@pytest.fixture(scope="module")
def demo_build(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo built, repaired and smoke-tested once: its wheels for the tests below."""
    return build_through_smoke(tmp_path_factory.mktemp("demo"), "demo", "--target", TARGET)


@pytest.fixture
def slow_smoke_catalog(catalog_copy: Path) -> Path:
    """The built-in catalog with a demo smoke test that sleeps ten minutes."""
    recipe = catalog_copy / "packages" / "demo.yaml"
    text = recipe.read_text()
    head, _, _ = text.partition("  script: |\n")
    recipe.write_text(head + "  script: |\n    import time\n    time.sleep(600)\n")
    return catalog_copy


# --- signals ------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_smoke_check_removes_its_container(
    tmp_path: Path, demo_build: dict[str, Any], slow_smoke_catalog: Path, signum: int
) -> None:
    wheel = Path(demo_build["wheel"])
    records = tmp_path / "records"
    farm = Farm(
        tmp_path,
        *("--recipes", str(slow_smoke_catalog), "smoke", str(wheel), "--target", TARGET),
        *("--output-dir", str(records)),
    )
    farm.wait_for("a smoke container", lambda: bool(containers(farm.pid)))
    code, stderr = farm.stop(signum)
    assert_stopped_by(code, stderr, signum, f"smoke test of {wheel.name} on {TARGET}")
    assert eventually(lambda: not containers(farm.pid)), containers(farm.pid)
    # The check never finished: no record says it passed or failed.
    assert not (records / f"smoke-{TARGET}.json").exists()
    assert (records / f"smoke-{TARGET}.log").is_file()


def test_a_smoke_check_past_its_time_limit_is_stopped_with_its_container(
    tmp_path: Path, demo_build: dict[str, Any], slow_smoke_catalog: Path
) -> None:
    wheel = Path(demo_build["wheel"])
    farm = Farm(
        tmp_path,
        *("--recipes", str(slow_smoke_catalog), "smoke", str(wheel), "--target", TARGET),
        *("--output-dir", str(tmp_path / "records"), "--timeout", "20", "--json"),
    )
    farm.wait_for("a smoke container", lambda: bool(containers(farm.pid)))
    code = farm.process.wait(timeout=300)
    stderr = farm.stderr()
    assert code == 1, stderr[-3000:]
    assert error_lines(stderr) == [
        "farm: error: the smoke stage ran past its limit of 20 s and was stopped"
    ]
    assert not containers(farm.pid)
    assert farm.process.stdout is not None
    document = json.loads(farm.process.stdout.read())
    assert document["ok"] is False and document["error"]["exit_code"] == 1


def test_sigterm_during_the_build_stops_the_buildkit_client_and_frees_the_lock(
    tmp_path: Path,
) -> None:
    state, out = tmp_path / "state", tmp_path / "out"
    farm = Farm(
        tmp_path,
        *("build", "demo", "--target", TARGET, "--no-cache", "--output-dir", str(out)),
        env={"FARM_STATE_DIR": str(state)},
    )
    farm.wait_for("BuildKit steps", lambda: "  | #" in farm.stderr().split(" build --platform")[-1])
    assert clients_mentioning(str(out)), "the BuildKit client should be running"
    code, stderr = farm.stop(signal.SIGTERM)
    assert code == 143, stderr[-3000:]
    (line,) = error_lines(stderr)
    assert line.startswith(
        f"farm: error: stopped by SIGTERM while building demo 0.1.0 for {TARGET}"
    )
    assert eventually(lambda: not clients_mentioning(str(out))), clients_mentioning(str(out))
    assert lock_is_free(state)
    (job,) = (out / "demo" / TARGET).iterdir()
    assert not (job / "wheels").exists()
    assert not list(job.glob(".partial-*")) and not list(job.glob(".context-*"))
    assert (job / "build.log").is_file() and (job / "build.sh").is_file()


def test_sigterm_during_the_install_check_removes_its_container_and_keeps_the_upload(
    tmp_path: Path,
) -> None:
    env = {"FARM_STATE_DIR": str(tmp_path / "state")}
    with _local_registry(env):
        farm = Farm(
            tmp_path,
            *("build", "demo", "--target", TARGET, "--publish", "local"),
            *("--output-dir", str(tmp_path / "out")),
            env=env,
        )
        farm.wait_for(
            "an install container", lambda: bool(containers(farm.pid, "install")), timeout=900
        )
        code, stderr = farm.stop(signal.SIGTERM)
        assert code == 143, stderr[-3000:]
        (line,) = error_lines(stderr)
        assert line.startswith("farm: error: stopped by SIGTERM while installing farm_demo-")
        assert eventually(lambda: not containers(farm.pid)), containers(farm.pid)
        assert lock_is_free(tmp_path / "state")
        # What was published before the signal stays published.
        served = LocalRegistry(tmp_path / "state").packages
        installing = line.split(" while installing ")[1].split()[0]
        assert [wheel.name for wheel in served.glob("*.whl")] == [installing]


@contextlib.contextmanager
def _local_registry(env: dict[str, str]) -> Iterator[str]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = run_farm("registry", "serve", "--detach", "--port", str(port), env=env, timeout=60)
    assert started.returncode == 0, started.stderr
    try:
        yield f"http://127.0.0.1:{port}/simple/"
    finally:
        run_farm("registry", "stop", env=env, timeout=60)


def _open(url: str) -> Any:
    import urllib.request

    return urllib.request.urlopen(url, timeout=30)


# --- host faults ----------------------------------------------------------------------


def test_the_daemon_gone_mid_build_is_a_host_fault(tmp_path: Path) -> None:
    socket_dir = Path(tempfile.mkdtemp(prefix="farm-relay-"))
    relay = EngineRelay(socket_dir / "docker.sock")
    state, out = tmp_path / "state", tmp_path / "out"
    try:
        farm = Farm(
            tmp_path,
            *("build", "demo", "--target", TARGET, "--no-cache", "--output-dir", str(out)),
            env={"FARM_STATE_DIR": str(state), "DOCKER_HOST": relay.docker_host},
        )
        farm.wait_for(
            "BuildKit steps", lambda: "  | #" in farm.stderr().split(" build --platform")[-1]
        )
        relay.cut()
        code = farm.process.wait(timeout=120)
    finally:
        relay.cut()
        shutil.rmtree(socket_dir, ignore_errors=True)
    stderr = farm.stderr()
    assert code == 3, stderr[-3000:]
    (line,) = error_lines(stderr)
    assert "the docker daemon stopped answering during the build stage" in line
    assert "farm: hint: start it again" in stderr
    assert eventually(lambda: not clients_mentioning(str(out)))
    assert not list(out.rglob("*.whl"))


def test_a_full_disk_during_repair_is_a_host_fault_and_keeps_the_built_wheel(
    tmp_path: Path, demo_build: dict[str, Any]
) -> None:
    built = Path(demo_build["wheels"][0])
    full = tmp_path / "full"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)], check=True)
    try:
        result = run_farm(
            "repair", str(built), "--target", TARGET, "--output-dir", str(full), "--json"
        )
    finally:
        subprocess.run(["umount", str(full)], check=True)
    assert result.returncode == 3, result.stderr[-3000:]
    (line,) = error_lines(result.stderr)
    assert "ran out of disk space" in line or "No space left on device" in line
    assert json.loads(result.stdout)["error"]["kind"] == "environment"
    assert built.is_file()


def test_an_output_dir_that_is_a_file_fails_before_any_work(tmp_path: Path) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("not a directory\n")
    result = run_farm(
        "build",
        "demo",
        "--target",
        TARGET,
        "--output-dir",
        str(blocker),
        "--json",
        env={"FARM_STATE_DIR": str(tmp_path / "state")},
    )
    assert result.returncode == 3, result.stderr
    assert error_lines(result.stderr) == [f"farm: error: --output-dir: File exists: {blocker}"]
    document = json.loads(result.stdout)
    assert document["schema_version"] == 1 and document["error"]["kind"] == "environment"
    assert blocker.read_text() == "not a directory\n"
    assert not (tmp_path / "state" / "ledger").exists()


def test_containers_of_a_farm_killed_outright_are_named_by_doctor_and_removed_next_time(
    tmp_path: Path, demo_build: dict[str, Any], slow_smoke_catalog: Path
) -> None:
    """SIGKILL cannot be handled: what that farm started is found by its labels (its pid no
    longer runs, on this machine) and removed by the next farm that needs the engine."""
    wheel = Path(demo_build["wheel"])
    farm = Farm(
        tmp_path,
        *("--recipes", str(slow_smoke_catalog), "smoke", str(wheel), "--target", TARGET),
        *("--output-dir", str(tmp_path / "records")),
    )
    farm.wait_for("a smoke container", lambda: bool(containers(farm.pid)))
    farm.process.kill()
    farm.process.wait(timeout=30)
    (left,) = containers(farm.pid)

    doctor = run_farm("doctor", "--json", timeout=300)
    (leftovers,) = [c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "leftovers"]
    assert leftovers["status"] == "warn" and f"farm process(es) {farm.pid}" in leftovers["detail"]

    state = tmp_path / "state"
    build = run_farm(
        "build", "demo", "--target", TARGET, "--output-dir", str(tmp_path / "out"),
        env={"FARM_STATE_DIR": str(state)},
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-3000:]
    assert f"left by farm process {farm.pid}, which no longer runs" in build.stderr
    assert not containers(farm.pid), left
