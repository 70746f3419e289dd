"""The one path from a stage to the docker engine: BuildKit builds and throw-away containers.

Every stage that talks to the engine (build, repair, smoke, install check,
base image loads, doctor's probe) does it through an :class:`EngineRunner`,
a context manager for one stage. It

* prints each command as ``+ cmd`` (secrets masked) and streams its output
  to the stage's progress callback and log file;
* writes the re-runnable script of every command it ran when it closes;
* names every container it starts (``farm-<stage>-<pid>-<token>``, labelled
  ``farm.stage``, ``farm.pid`` and ``farm.runner``) and removes them on any way
  out: success, failure, timeout, an interrupt or SIGTERM; a host program that
  starts containers itself (cibuildwheel) is given the same labels, and what it
  leaves behind is removed by label;
* stops a command that runs past its time limit, and its container;
* tells host faults (disk full, daemon gone, an image neither present nor
  pullable, no emulation) from failures of the stage's own work: the first
  are :class:`~farm.errors.EnvironmentProblem` (exit 3), the second are for
  the stage to judge.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from farm.engine import BuildRequest, Engine, daemon_version
from farm.errors import EnvironmentProblem, FarmError, TimedOut, host_fault
from farm.process import Finished, capture, command_line, pid_alive, stream, write_script

STAGE_LABEL = "farm.stage"
PID_LABEL = "farm.pid"
HOST_LABEL = "farm.host"  # the machine whose farm.pid it is (a daemon may serve several)
RUNNER_LABEL = "farm.runner"  # one runner's containers, including those a driven program made
PRUNE_HINT = "free disk space: `docker builder prune` frees BuildKit cache"

# What the docker client or BuildKit print when an image is neither local nor pullable.
_PULL_FAILURES = (
    "failed to resolve source metadata",
    "pull access denied",
    "failed to authorize",
    "manifest unknown",
    "no such host",
    "dial tcp",
    "toomanyrequests",
    "i/o timeout",
    "repository does not exist",
)
_DAEMON_GONE = (
    "cannot connect to the docker daemon",
    "is the docker daemon running",
    "error during connect",
)


class EngineRunner:
    """Runs one stage's engine commands; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        stage: str,
        on_line: Callable[[str], None],
        *,
        log_path: Path | None = None,
        script_path: Path | None = None,
    ) -> None:
        self.engine, self.stage, self.on_line = engine, stage, on_line
        self.log_path, self.script_path = log_path, script_path
        self.commands: list[tuple[Sequence[str], Mapping[str, str]]] = []
        self._containers: list[str] = []
        self._log: IO[str] | None = None
        self.token = secrets.token_hex(3)
        self._drove = False  # a driven program may have left labelled containers

    def __enter__(self) -> EngineRunner:
        if self.log_path is not None:
            try:
                self._log = self.log_path.open("w", encoding="utf-8")
            except OSError as exc:
                raise host_fault(exc, f"{self.stage} log") from None
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            self.remove_containers()
        finally:
            if self._log is not None:
                self._log.close()
            if self.script_path is not None and self.commands:
                with contextlib.suppress(OSError):
                    write_script(self.script_path, self.commands)

    # --- BuildKit -----------------------------------------------------------------

    def build(
        self,
        request: BuildRequest,
        *,
        failed: Callable[[Finished], FarmError],
        image: str | None = None,
        timeout: float | None = None,
    ) -> Finished:
        """A BuildKit build; a failure is a host fault or, else, ``failed(result)``."""
        result = self._run(self.engine.build_argv(request), {}, timeout)
        if result.returncode != 0:
            raise self.host_fault(result, image) or failed(result)
        return result

    # --- containers ---------------------------------------------------------------

    def container(
        self,
        image: str,
        command: Sequence[str],
        *,
        platform: str,
        network: str = "none",
        options: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Finished:
        """``command`` in a named throw-away container of ``image``.

        ``env`` reaches the docker client only (pass names with ``-e NAME`` in
        ``options``); it is never written to the log or the script. A
        non-zero exit of the command is returned for the stage to judge.
        """
        name = f"farm-{self.stage}-{os.getpid()}-{secrets.token_hex(3)}"
        argv = self.engine.run_argv(platform, network, "--name", name, *self.labels(), *options)
        self._containers.append(name)
        result = self._run([*argv, image, *command], env or {}, timeout)
        fault = self.host_fault(result, image) if result.returncode else None
        if fault is not None:
            raise fault
        return result

    def labels(self) -> list[str]:
        """The ``docker run``/``create`` options that mark a container as this runner's."""
        return [
            *("--label", f"{STAGE_LABEL}={self.stage}"),
            *("--label", f"{PID_LABEL}={os.getpid()}"),
            *("--label", f"{HOST_LABEL}={socket.gethostname()}"),
            *("--label", f"{RUNNER_LABEL}={self.token}"),
        ]

    def remove_containers(self) -> None:
        """Remove every container this runner (or a program it drove) started that is still
        there."""
        while self._containers:
            name = self._containers.pop()
            capture([self.engine.docker, "rm", "--force", name], timeout=60)
        if self._drove:
            label = f"label={RUNNER_LABEL}={self.token}"
            found = capture([self.engine.docker, "ps", "--all", "--quiet", "--filter", label])
            for container in found.output.split() if found.returncode == 0 else ():
                capture([self.engine.docker, "rm", "--force", container], timeout=60)

    # --- host programs that drive the engine ------------------------------------------

    def drive(
        self,
        argv: Sequence[str],
        *,
        failed: Callable[[Finished], FarmError],
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Finished:
        """A program on this machine that runs engine commands itself (cibuildwheel).

        It must give its containers :meth:`labels`: those still there when the runner
        closes, or when the program is stopped, are removed like the runner's own.
        ``env`` (no secrets) is shown in the log and the script. A failure is a host
        fault or, else, ``failed(result)``.
        """
        self._drove = True
        result = self._run(list(argv), {}, timeout, shown_env=env or {})
        if result.returncode != 0:
            raise self.host_fault(result) or failed(result)
        return result

    # --- both ---------------------------------------------------------------------

    def _run(
        self,
        argv: list[str],
        hidden_env: Mapping[str, str],
        timeout: float | None,
        shown_env: Mapping[str, str] | None = None,
    ) -> Finished:
        env = {**self.engine.env, **(shown_env or {})}
        shown = command_line(argv, env)
        self.on_line(f"+ {shown}")
        self.commands.append((argv, env))
        if self._log is not None:
            self._log.write(f"+ {shown}\n")
        result = stream(argv, on_line=self._output, env={**env, **hidden_env}, timeout=timeout)
        if result.timed_out:
            self.remove_containers()
            raise TimedOut(
                f"the {self.stage} stage ran past its limit of {timeout:.0f} s and was stopped",
                hint=f"the log shows how far it got: {self.log_path}" if self.log_path else None,
            )
        return result

    def _output(self, line: str) -> None:
        if self._log is not None:
            try:
                self._log.write(line + "\n")
            except OSError as exc:
                raise host_fault(exc, f"{self.stage} log") from None
        self.on_line(line)

    def host_fault(self, result: Finished, image: str | None = None) -> EnvironmentProblem | None:
        """The host's fault in a failed engine command, or None when the work itself failed."""
        return engine_fault(
            self.stage, result, lambda: _daemon_answers(self.engine), image, self.log_path
        )


def orphaned_containers(engine: Engine) -> list[tuple[str, int]]:
    """Containers a farm process of this machine started and did not live to remove (it was
    killed outright: SIGKILL, the OOM killer), as (id, pid). Another machine's, or a live
    process's, are never among them."""
    fields = f'{{{{.ID}}}} {{{{.Label "{PID_LABEL}"}}}} {{{{.Label "{HOST_LABEL}"}}}}'
    listed = capture(
        [engine.docker, "ps", "--all", "--filter", f"label={PID_LABEL}", "--format", fields],
        timeout=60,
    )
    host = socket.gethostname()
    orphans = []
    for line in listed.output.splitlines() if listed.returncode == 0 else ():
        container, pid, where = [*line.split(), "", "", ""][:3]
        if pid.isdigit() and where == host and not pid_alive(int(pid)):
            orphans.append((container, int(pid)))
    return orphans


def remove_orphans(engine: Engine, say: Callable[[str], None]) -> int:
    """Remove :func:`orphaned_containers`, saying what went; how many."""
    orphans = orphaned_containers(engine)
    for container, pid in orphans:
        capture([engine.docker, "rm", "--force", container], timeout=60)
        say(f"removed container {container} left by farm process {pid}, which no longer runs")
    return len(orphans)


def engine_fault(
    stage: str,
    result: Finished,
    daemon_answers: Callable[[], bool],
    image: str | None = None,
    log_path: Path | None = None,
) -> EnvironmentProblem | None:
    """The host fault a failed engine command shows, judged from its output and whether the
    daemon still answers; None when the stage's own work failed."""
    text = result.output.lower()
    log = f"; log: {log_path}" if log_path else ""
    if "no space left on device" in text:
        return EnvironmentProblem(f"the {stage} stage ran out of disk space{log}", hint=PRUNE_HINT)
    if any(marker in text for marker in _DAEMON_GONE) or not daemon_answers():
        return EnvironmentProblem(
            f"the docker daemon stopped answering during the {stage} stage{log}",
            hint="start it again (scripts/host-setup.sh or `systemctl start docker`), then rerun: "
            "finished stages are kept",
        )
    pulling = "unable to find image" in text or "load metadata for" in text
    if pulling and any(marker in text for marker in _PULL_FAILURES):
        what = f"base image {image}" if image else "an image the stage needs"
        return EnvironmentProblem(
            f"{what} is neither present nor pullable ({stage} stage){log}",
            hint="pull it where its registry is reachable and `docker load` it here, or point "
            "the target's base_image at a reachable mirror (--recipes DIR)",
        )
    if "exec format error" in text:
        return EnvironmentProblem(
            f"the target's programs cannot run here (exec format error) in the {stage} stage{log}",
            hint="register QEMU: scripts/host-setup.sh",
        )
    return None


def _daemon_answers(engine: Engine) -> bool:
    try:
        daemon_version(engine)
    except EnvironmentProblem:
        return False
    return True
