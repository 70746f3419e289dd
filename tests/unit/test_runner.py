"""How the engine runner tells host faults from a stage's own failures (decision logic only;
the integration tests bring each fault about for real)."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.process import Finished
from farm.runner import engine_fault


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
