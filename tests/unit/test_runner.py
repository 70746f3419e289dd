"""How the engine runner tells host faults from a stage's own failures (decision logic only;
the integration tests bring each fault about for real)."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from farm.engine import BuildRequest, Engine
from farm.errors import FarmError, TimedOut
from farm.process import Finished
from farm.runner import EngineRunner, engine_fault


def _failed(output: str) -> Finished:
    return Finished(argv=("docker", "build"), returncode=1, output=output)


def _up() -> bool:
    return True


def _down() -> bool:
    return False


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("ERROR: failed to copy: write /x: no space left on device", "ran out of disk space"),
        (
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.",
            "stopped answering",
        ),
        ("error during connect: Get http://...: EOF", "stopped answering"),
        (
            "ERROR: load metadata for nvcr.io/nvidia/l4t:r36: failed to resolve source metadata",
            "base image img:1 is neither present nor pullable",
        ),
        (
            "Unable to find image 'img:1' locally\ndocker: Error response from daemon: "
            "pull access denied for img",
            "base image img:1 is neither present nor pullable",
        ),
        ("exec /bin/sh: exec format error", "exec format error"),
    ],
)
def test_host_faults_are_named_with_the_stage_and_log(output: str, expected: str) -> None:
    fault = engine_fault("repair", _failed(output), _up, "img:1", Path("/out/repair.log"))
    assert fault is not None and fault.exit_code == 3
    assert expected in fault.message and fault.message.endswith("log: /out/repair.log")
    assert fault.hint


def test_a_daemon_that_no_longer_answers_is_a_host_fault_whatever_the_client_printed() -> None:
    fault = engine_fault("build", _failed("error reading from server: EOF"), _down)
    assert fault is not None
    assert fault.message == "the docker daemon stopped answering during the build stage"


def test_a_failing_step_with_the_daemon_up_is_the_stages_own_failure() -> None:
    output = 'ERROR: process "/bin/sh -c pip wheel ." did not complete successfully: exit code 1'
    assert engine_fault("build", _failed(output), _up) is None
    # A missing image that another marker does not explain is not a pull failure.
    assert engine_fault("smoke", _failed("Unable to find image 'x' locally\nok"), _up) is None


# --- the runner against a fake docker client (a script that records its calls) -------------


FAKE_DOCKER = """#!{python}
import json, os, sys, time
with open({calls!r}, "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\\n")
command = sys.argv[1]
if command == "version":
    print("20.10.24")
elif command == "run":
    print("started", flush=True)
    time.sleep(float(os.environ.get("FAKE_RUN_SECONDS", "0")))
    sys.exit(int(os.environ.get("FAKE_RUN_EXIT", "0")))
elif command == "build":
    print("#1 ERROR: process did not complete successfully: exit code 2")
    sys.exit(1)
"""


def _engine(tmp_path: Path) -> tuple[Engine, Path]:
    calls = tmp_path / "calls.jsonl"
    script = tmp_path / "docker"
    script.write_text(FAKE_DOCKER.format(python=sys.executable, calls=str(calls)))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return Engine(kind="classic", docker=str(script), client_version="20.10.24"), calls


def _calls(path: Path) -> list[list[str]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_containers_are_named_labelled_and_removed_after_use(tmp_path: Path) -> None:
    engine, calls = _engine(tmp_path)
    lines: list[str] = []
    log, script = tmp_path / "smoke.log", tmp_path / "s.sh"
    with EngineRunner(engine, "smoke", lines.append, log_path=log, script_path=script) as runner:
        result = runner.container("img:1", ["true"], platform="linux/arm64", env={"SECRET": "x"})
    assert result.returncode == 0 and "started" in result.output
    run, remove = (call for call in _calls(calls) if call[0] in ("run", "rm"))
    name = run[run.index("--name") + 1]
    assert name.startswith(f"farm-smoke-{os.getpid()}-")
    assert f"farm.pid={os.getpid()}" in run and "farm.stage=smoke" in run
    assert remove == ["rm", "--force", name]
    assert lines[0].startswith("+ ") and "--name " + name in lines[0]
    assert log.read_text().startswith("+ ") and "SECRET" not in script.read_text()


def test_a_container_past_its_limit_is_stopped_and_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, calls = _engine(tmp_path)
    monkeypatch.setenv("FAKE_RUN_SECONDS", "30")
    limit = "the smoke stage ran past its limit of 1 s"
    with pytest.raises(TimedOut, match=limit), EngineRunner(engine, "smoke", print) as runner:
        runner.container("img:1", ["sleep"], platform="linux/arm64", timeout=1)
    assert [call[0] for call in _calls(calls) if call[0] in ("run", "rm")] == ["run", "rm"]


def test_an_interrupt_removes_the_container_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, calls = _engine(tmp_path)
    monkeypatch.setenv("FAKE_RUN_SECONDS", "30")

    def interrupt(line: str) -> None:
        if line == "started":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), EngineRunner(engine, "install", interrupt) as runner:
        runner.container("img:1", ["sleep"], platform="linux/arm64")
    assert [call[0] for call in _calls(calls) if call[0] in ("run", "rm")] == ["run", "rm"]


def test_a_failed_build_with_the_daemon_up_is_the_stages_failure(tmp_path: Path) -> None:
    engine, _ = _engine(tmp_path)
    request = BuildRequest(dockerfile=tmp_path / "D", context=tmp_path, platform="linux/arm64")

    class StepFailed(FarmError):
        pass

    with (
        pytest.raises(StepFailed, match="exit code 2"),
        EngineRunner(engine, "build", lambda line: None) as runner,
    ):
        runner.build(request, failed=lambda result: StepFailed(result.failing_line()))


def test_the_smoke_checks_share_one_time_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two check containers of 2 s each under a 3 s limit: the second is stopped, and the
    message gives the limit the user set, not what was left of it."""
    from farm.smoke import _run_checks

    engine, calls = _engine(tmp_path)
    monkeypatch.setenv("FAKE_RUN_SECONDS", "2")
    with (
        pytest.raises(TimedOut, match="the smoke stage ran past its limit of 3 s"),
        EngineRunner(engine, "smoke", print) as runner,
    ):
        _run_checks(runner, "img:1", [["check"], ["check"]], "linux/arm64", [], timeout=3)
    assert [call[0] for call in _calls(calls) if call[0] == "run"] == ["run", "run"]
    with EngineRunner(engine, "smoke", print) as runner:
        outputs = _run_checks(runner, "img:1", [["check"]], "linux/arm64", [], timeout=30)
    assert [finished.output for finished in outputs] == ["started"]
