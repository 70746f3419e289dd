"""Finding a BuildKit-capable docker client and spelling its build commands.

Two kinds of client can drive BuildKit:

* ``buildx``: ``docker buildx build``, when the plugin is installed. It can
  target a named builder (``--builder``: a remote, native arm64 or kubernetes
  builder) and export/import registry cache where the driver allows it.
* ``classic``: a docker client older than 23.0 (Debian 12's docker.io is
  20.10) builds with BuildKit when ``DOCKER_BUILDKIT=1``. Newer clients
  without buildx refuse ("the buildx component is missing or broken").

``FARM_ENGINE`` (``buildx`` or ``classic``) and ``FARM_DOCKER`` (the client's
path) override detection; ``FARM_BUILDX_BUILDER`` names the buildx builder and
``FARM_BUILDX_CACHE`` a registry reference for build cache.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from packaging.version import InvalidVersion, Version

from farm.errors import EnvironmentProblem, UsageError
from farm.process import capture

ENGINE_ENV = "FARM_ENGINE"
DOCKER_ENV = "FARM_DOCKER"
BUILDER_ENV = "FARM_BUILDX_BUILDER"
CACHE_ENV = "FARM_BUILDX_CACHE"
# Docker 23.0 made buildx the only BuildKit path of the CLI.
_CLASSIC_BUILDKIT_BEFORE = Version("23.0")
SETUP_HINT = "run scripts/host-setup.sh as root (installs docker.io and starts the daemon)"


@dataclass(frozen=True, kw_only=True)
class Engine:
    kind: Literal["buildx", "classic"]
    docker: str
    client_version: str
    builder: str | None = None
    cache_ref: str | None = None
    driver: str | None = None  # the buildx builder's driver: docker, docker-container, ...
    reason: str = ""  # why this client was chosen

    @property
    def exports_registry_cache(self) -> bool:
        """Whether ``--cache-to type=registry`` can work: buildx, a cache reference, and a
        driver other than ``docker`` (the daemon's own BuildKit exports no cache)."""
        return self.kind == "buildx" and bool(self.cache_ref) and self.driver != "docker"

    @property
    def env(self) -> dict[str, str]:
        return {"DOCKER_BUILDKIT": "1"} if self.kind == "classic" else {}

    def describe(self) -> str:
        if self.kind == "buildx":
            where = f", builder {self.builder}" if self.builder else ""
            driver = f", {self.driver} driver" if self.driver else ""
            return f"docker buildx ({self.docker}, client {self.client_version}{where}{driver})"
        return (
            f"classic docker client with DOCKER_BUILDKIT=1 ({self.docker}, {self.client_version})"
        )

    def run_argv(self, platform: str, network: str, *options: str) -> list[str]:
        """``docker run`` of a throw-away container of ``platform``; image and command follow.

        The command never runs as the container's PID 1: Docker's init (tini) does. Under
        QEMU user emulation a crashing guest ends by raising its signal on itself, and the
        kernel does not deliver a default-action signal to a PID namespace's init, so a
        crash as PID 1 can leave the container idle until its time limit. Core dumps are off
        from the start (writing an emulated guest's core takes minutes and helps nobody).
        """
        return [
            self.docker,
            "run",
            "--rm",
            "--init",
            "--ulimit",
            "core=0",
            "--platform",
            platform,
            "--network",
            network,
            *options,
        ]

    def build_argv(self, request: BuildRequest) -> list[str]:
        """The full BuildKit invocation for one build."""
        argv = [self.docker, "buildx", "build"] if self.kind == "buildx" else [self.docker, "build"]
        if self.kind == "buildx" and self.builder:
            argv += ["--builder", self.builder]
        argv += [
            "--platform",
            request.platform,
            "--progress",
            "plain",
            "-f",
            str(request.dockerfile),
        ]
        if request.target_stage:
            argv += ["--target", request.target_stage]
        if request.no_cache:
            argv.append("--no-cache")
        for key, value in request.build_args.items():
            argv += ["--build-arg", f"{key}={value}"]
        for secret_id, path in request.secrets.items():
            argv += ["--secret", f"id={secret_id},src={path}"]
        if request.output_dir is not None:
            argv += ["--output", f"type=local,dest={request.output_dir}"]
        if request.tag:
            argv += ["--tag", request.tag]
            if self.kind == "buildx":
                argv.append("--load")
        if self.exports_registry_cache and request.use_registry_cache:
            argv += [
                "--cache-from",
                f"type=registry,ref={self.cache_ref}",
                "--cache-to",
                f"type=registry,ref={self.cache_ref},mode=max",
            ]
        argv.append(str(request.context))
        return argv


@dataclass(frozen=True, kw_only=True)
class BuildRequest:
    dockerfile: Path
    context: Path
    platform: str
    target_stage: str | None = None
    output_dir: Path | None = None
    tag: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    use_registry_cache: bool = True
    no_cache: bool = False  # BuildKit's layer cache unused; cache mounts stay


@dataclass(frozen=True, kw_only=True)
class EngineChoice:
    """What the environment says about the client: forced kind, client path, buildx builder
    and cache reference; all unset means detect."""

    kind: Literal["buildx", "classic"] | None = None
    docker: str | None = None
    builder: str | None = None
    cache_ref: str | None = None
    search_path: str | None = None  # PATH to look for ``docker`` on (None: this process's)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> EngineChoice:
        forced = environ.get(ENGINE_ENV, "").strip() or None
        if forced not in (None, "buildx", "classic"):
            raise UsageError(f"{ENGINE_ENV}={forced!r}: expected 'buildx' or 'classic'")
        return cls(
            kind=forced,  # type: ignore[arg-type]  # checked above
            docker=environ.get(DOCKER_ENV) or None,
            builder=environ.get(BUILDER_ENV) or None,
            cache_ref=environ.get(CACHE_ENV) or None,
            search_path=environ.get("PATH"),
        )


def detect_engine(choice: EngineChoice) -> Engine:
    refused: list[str] = []
    for docker in _candidates(choice):
        engine, why_not = _probe(docker, choice)
        if engine is not None:
            return engine
        refused.append(f"{docker}: {why_not}")
    detail = "; ".join(refused) if refused else "no docker client on PATH"
    raise EnvironmentProblem(f"no BuildKit-capable docker client ({detail})", hint=SETUP_HINT)


def engine_for_dry_run(choice: EngineChoice) -> Engine:
    """The engine detection finds; else, as nothing runs, a BuildKit-capable classic client,
    to show the commands it would get."""
    try:
        return detect_engine(choice)
    except EnvironmentProblem:
        return Engine(
            kind="classic",
            docker="docker",
            client_version="unknown",
            reason="assumed for --dry-run",
        )


def _candidates(choice: EngineChoice) -> list[str]:
    if choice.docker:
        return [choice.docker]
    found: list[str] = []
    for path in (shutil.which("docker", path=choice.search_path), "/usr/bin/docker"):
        if (
            path
            and Path(path).exists()
            and os.path.realpath(path) not in map(os.path.realpath, found)
        ):
            found.append(path)
    return found


def _probe(docker: str, choice: EngineChoice) -> tuple[Engine | None, str]:
    version = _client_version(docker)
    if version is None:
        return None, "not a working docker client"
    common = {"docker": docker, "client_version": version}
    forced = choice.kind
    if forced != "classic" and capture([docker, "buildx", "version"]).returncode == 0:
        return Engine(
            kind="buildx",
            builder=choice.builder,
            cache_ref=choice.cache_ref,
            driver=_buildx_driver(docker, choice.builder),
            reason="buildx plugin found",
            **common,
        ), ""
    if forced == "buildx":
        return None, "has no buildx plugin"
    try:
        classic_ok = Version(version.split("+")[0].split("-")[0]) < _CLASSIC_BUILDKIT_BEFORE
    except InvalidVersion:
        classic_ok = False
    if classic_ok or (forced == "classic" and choice.docker):
        return Engine(kind="classic", reason="client builds with DOCKER_BUILDKIT=1", **common), ""
    if forced == "classic":
        return None, f"client {version} builds through buildx (FARM_DOCKER=PATH insists)"
    return None, f"client {version} needs the buildx plugin for BuildKit"


def _buildx_driver(docker: str, builder: str | None) -> str | None:
    """The driver of the builder buildx would use (``docker buildx inspect``), if it says."""
    argv = [docker, "buildx", "inspect", *(["--builder", builder] if builder else [])]
    result = capture(argv, timeout=30)
    for line in result.output.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Driver" and value.strip():
            return value.strip()
    return None


def _client_version(docker: str) -> str | None:
    try:
        result = capture([docker, "version", "--format", "{{.Client.Version}}"], timeout=30)
    except EnvironmentProblem:
        return None
    text = result.output.strip().splitlines()
    # The client prints its version even when the daemon is down (and exits non-zero).
    return text[0].strip() if text and text[0][:1].isdigit() else None


def daemon_version(engine: Engine) -> str:
    """The daemon's version, or an EnvironmentProblem saying how to start it."""
    result = capture([engine.docker, "version", "--format", "{{.Server.Version}}"], timeout=30)
    answer = result.output.strip()
    if result.returncode != 0 or not answer[:1].isdigit():
        first = answer.splitlines()[0] if answer else "no answer"
        raise EnvironmentProblem(
            f"docker daemon not reachable through {engine.docker}: {first}", hint=SETUP_HINT
        )
    return answer


def image_exists(engine: Engine, reference: str) -> bool:
    return (
        capture([engine.docker, "image", "inspect", "--format", "{{.Id}}", reference]).returncode
        == 0
    )
