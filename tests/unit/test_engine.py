from __future__ import annotations

import stat
from pathlib import Path

import pytest

from farm.engine import BuildRequest, Engine, EngineChoice, detect_engine
from farm.errors import EnvironmentProblem, UsageError

REQUEST = BuildRequest(
    dockerfile=Path("/w/Dockerfile"),
    context=Path("/w/ctx"),
    platform="linux/arm64",
    target_stage="wheels",
    output_dir=Path("/w/out"),
    build_args={"FARM_JOBS": "2"},
    secrets={"farm-ca-bundle": "/ca.pem"},
)


def test_classic_invocation_uses_docker_build_with_buildkit_env() -> None:
    engine = Engine(kind="classic", docker="/usr/bin/docker", client_version="20.10.24")
    assert engine.env == {"DOCKER_BUILDKIT": "1"}
    assert engine.build_argv(REQUEST) == [
        "/usr/bin/docker",
        "build",
        "--platform",
        "linux/arm64",
        "--progress",
        "plain",
        "-f",
        "/w/Dockerfile",
        "--target",
        "wheels",
        "--build-arg",
        "FARM_JOBS=2",
        "--secret",
        "id=farm-ca-bundle,src=/ca.pem",
        "--output",
        "type=local,dest=/w/out",
        "/w/ctx",
    ]


def test_buildx_invocation_names_builder_and_registry_cache() -> None:
    engine = Engine(
        kind="buildx",
        docker="docker",
        client_version="27.0",
        builder="arm64-k8s",
        cache_ref="registry.example/farm/cache:jp6",
    )
    argv = engine.build_argv(REQUEST)
    assert argv[:5] == ["docker", "buildx", "build", "--builder", "arm64-k8s"]
    assert "--cache-from" in argv and "type=registry,ref=registry.example/farm/cache:jp6" in argv
    assert "type=registry,ref=registry.example/farm/cache:jp6,mode=max" in argv
    assert engine.env == {}


def test_buildx_loads_tagged_images() -> None:
    engine = Engine(kind="buildx", docker="docker", client_version="27.0")
    request = BuildRequest(
        dockerfile=Path("D"),
        context=Path("c"),
        platform="linux/arm64",
        tag="farm.local/x:1",
        use_registry_cache=False,
    )
    argv = engine.build_argv(request)
    assert argv[argv.index("--tag") + 1] == "farm.local/x:1" and "--load" in argv


def _fake_docker(tmp_path: Path, version: str, buildx: bool) -> str:
    script = tmp_path / f"docker-{version}"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = version ]; then echo {version}; exit 0; fi\n'
        f'if [ "$1" = buildx ]; then exit {0 if buildx else 1}; fi\n'
        "exit 1\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def _detect(environ: dict[str, str]) -> Engine:
    return detect_engine(EngineChoice.from_environ(environ))


def test_detection_prefers_buildx(tmp_path: Path) -> None:
    docker = _fake_docker(tmp_path, "27.3.1", buildx=True)
    engine = _detect({"FARM_DOCKER": docker, "FARM_BUILDX_BUILDER": "native"})
    assert (engine.kind, engine.builder) == ("buildx", "native")


def test_old_client_without_buildx_is_classic(tmp_path: Path) -> None:
    engine = _detect({"FARM_DOCKER": _fake_docker(tmp_path, "20.10.24+dfsg1", False)})
    assert engine.kind == "classic"
    assert "DOCKER_BUILDKIT=1" in engine.describe()


def test_new_client_without_buildx_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem, match="needs the buildx plugin") as caught:
        _detect({"FARM_DOCKER": _fake_docker(tmp_path, "28.2.2", False)})
    assert caught.value.hint and "host-setup" in caught.value.hint


def test_explicit_setting_overrides_detection(tmp_path: Path) -> None:
    docker = _fake_docker(tmp_path, "27.3.1", buildx=True)
    assert _detect({"FARM_DOCKER": docker, "FARM_ENGINE": "classic"}).kind == "classic"
    with pytest.raises(EnvironmentProblem, match="has no buildx plugin"):
        _detect({"FARM_DOCKER": _fake_docker(tmp_path, "20.10.1", False), "FARM_ENGINE": "buildx"})
    with pytest.raises(UsageError, match="expected 'buildx' or 'classic'"):
        _detect({"FARM_ENGINE": "podman"})


def test_no_client_at_all(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem, match="no BuildKit-capable docker client"):
        _detect({"FARM_DOCKER": str(tmp_path / "missing")})


def test_forced_classic_skips_a_client_whose_build_is_buildx(tmp_path: Path) -> None:
    from farm.engine import _probe

    new = _fake_docker(tmp_path, "28.2.2", buildx=True)
    old = _fake_docker(tmp_path, "20.10.24+dfsg1", buildx=False)
    # Found on PATH (not named by FARM_DOCKER), a 28 client is not taken as the classic one:
    # its `docker build` is buildx. Detection goes on to the next client.
    engine, why_not = _probe(new, EngineChoice(kind="classic"))
    assert engine is None and "builds through buildx" in why_not
    engine = _detect({"FARM_ENGINE": "classic", "FARM_DOCKER": old})
    assert engine is not None and (engine.kind, engine.docker) == ("classic", old)


def test_the_docker_driver_gets_no_registry_cache_flags() -> None:
    engine = Engine(
        kind="buildx",
        docker="docker",
        client_version="28.2.2",
        driver="docker",
        cache_ref="registry.example/farm/cache:jp6",
    )
    assert not engine.exports_registry_cache
    assert "--cache-to" not in engine.build_argv(REQUEST)
    assert "docker driver" in engine.describe()
    other = Engine(
        kind="buildx",
        docker="docker",
        client_version="28.2.2",
        driver="docker-container",
        cache_ref="registry.example/farm/cache:jp6",
    )
    assert "--cache-to" in other.build_argv(REQUEST)


def test_doctor_says_what_the_docker_driver_cannot_do() -> None:
    from farm.doctor import check_buildx

    plain = Engine(kind="buildx", docker="docker", client_version="28.2.2", driver="docker")
    assert check_buildx(plain).status == "ok"
    assert "no registry cache export" in check_buildx(plain).detail
    wanted = Engine(
        kind="buildx", docker="docker", client_version="28", driver="docker", cache_ref="r/c:1"
    )
    check = check_buildx(wanted)
    assert check.status == "warn" and "FARM_BUILDX_CACHE=r/c:1 is not used" in check.detail
    assert check.fix and "docker-container" in check.fix
