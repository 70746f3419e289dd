"""The cibuildwheel build kind's decisions, checked against cibuildwheel's own option parsing
and image expectations (no docker: the integration test builds for real)."""

from __future__ import annotations

import dataclasses
import sys
import textwrap
from pathlib import Path

import pytest
from cibuildwheel.oci_container import OCIContainerEngineConfig
from cibuildwheel.options import CommandLineArguments, compute_options
from cibuildwheel.platforms.linux import all_python_configurations

from farm import cibw
from farm.builders import cibuildwheel as driver
from farm.catalog import Catalog, load_catalog
from farm.cli import main
from farm.engine import Engine
from farm.errors import CatalogError, IncompatibleError
from farm.plan import BuildJob, plan_job
from farm.process import Finished
from farm.resources import BuilderResources
from farm.runner import EngineRunner

IDENTIFIER = "cp311-manylinux_aarch64"
# A package's own settings, as lru-dict's and others' pyproject.toml carry them.
PACKAGE_SETTINGS = """
[tool.cibuildwheel]
build = ["cp310-*", "cp311-*", "cp312-*"]
skip = "pp*"
test-requires = ["pytest"]
test-command = "python -m pytest {project}/tests"
environment = {PACKAGE_FLAG = "1"}
repair-wheel-command = "auditwheel repair --plat manylinux2014_aarch64 -w {dest_dir} {wheel}"
manylinux-aarch64-image = "manylinux2014"

[tool.cibuildwheel.linux]
before-all = "yum install -y libffi-devel"
"""


def _job(catalog: Catalog, ci_runner: BuilderResources) -> BuildJob:
    return plan_job(catalog, "lru-dict", "bookworm-arm64", resources=ci_runner)


def _resolved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> tuple[object, object]:
    """cibuildwheel's own reading of the package's settings under the farm's environment."""
    (tmp_path / "pyproject.toml").write_text(PACKAGE_SETTINGS)
    monkeypatch.chdir(tmp_path)
    arguments = dataclasses.replace(
        CommandLineArguments.defaults(), platform="linux", archs="aarch64"
    )
    options = compute_options(platform="linux", command_line_arguments=arguments, env=env)
    return options.globals, options.build_options(IDENTIFIER)


def test_the_farm_owns_the_wheel_the_image_the_engine_and_the_repair(
    catalog: Catalog, ci_runner: BuilderResources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = _job(catalog, ci_runner)
    bundle = tmp_path / "company-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("PIP_CERT", str(bundle))
    monkeypatch.setenv("HTTPS_PROXY", "http://user:secret@proxy:3128")
    labels = ["--label", "farm.stage=build", "--label", "farm.pid=42"]
    env = cibw.cibuildwheel_env(job, labels, None)
    selected, options = _resolved(tmp_path, monkeypatch, env)

    assert selected.build_selector(IDENTIFIER)  # type: ignore[attr-defined]
    assert not selected.build_selector("cp312-manylinux_aarch64")  # type: ignore[attr-defined]
    assert options.manylinux_images["aarch64"] == cibw.image_reference(job)  # type: ignore[attr-defined]
    assert options.repair_command == ""  # type: ignore[attr-defined]
    engine = options.container_engine  # type: ignore[attr-defined]
    assert engine.name == "docker" and engine.disable_host_mount
    args = " ".join(engine.create_args)
    assert args.startswith(" ".join(labels))
    assert f"--volume {bundle}:/run/farm/ca-bundle.pem:ro --env PIP_CERT=/run/farm/" in args
    assert args.endswith("--env HTTPS_PROXY")  # by name: the value stays off command lines
    assert "secret" not in env["CIBW_CONTAINER_ENGINE_LINUX"]


def test_the_packages_own_settings_apply_unchanged(
    catalog: Catalog, ci_runner: BuilderResources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = cibw.cibuildwheel_env(_job(catalog, ci_runner), [], None)
    _, options = _resolved(tmp_path, monkeypatch, env)
    assert options.test_command == "python -m pytest {project}/tests"  # type: ignore[attr-defined]
    assert options.test_requires == ["pytest"]  # type: ignore[attr-defined]
    assert options.before_all == "yum install -y libffi-devel"  # type: ignore[attr-defined]
    environment = options.environment.as_dictionary(prev_environment={})  # type: ignore[attr-defined]
    assert environment == {"PACKAGE_FLAG": "1"}


def test_recipe_environment_is_appended_and_before_all_replaced(
    catalog: Catalog, ci_runner: BuilderResources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = _job(catalog, ci_runner)
    recipe = job.spec.recipe
    build = recipe.build.model_copy(
        update={"environment": {"CFLAGS": "-O2"}, "before_all": "apt-get install -y libffi-dev"}
    )
    spec = dataclasses.replace(job.spec, recipe=recipe.model_copy(update={"build": build}))
    env = cibw.cibuildwheel_env(dataclasses.replace(job, spec=spec), [], None)
    _, options = _resolved(tmp_path, monkeypatch, env)
    environment = options.environment.as_dictionary(prev_environment={})  # type: ignore[attr-defined]
    assert environment == {"PACKAGE_FLAG": "1", "CFLAGS": "-O2"}
    assert options.before_all == "apt-get install -y libffi-dev"  # type: ignore[attr-defined]


def test_create_args_survive_cibuildwheels_parsing_with_odd_paths() -> None:
    args = ["--label", "farm.stage=build", "--volume", "/a dir/ca.pem:/run/farm/ca.pem:ro"]
    parsed = OCIContainerEngineConfig.from_config_string(driver.container_engine(args))
    assert parsed.create_args == tuple(args)


def test_the_image_has_the_layout_cibuildwheel_checks_for(
    catalog: Catalog, ci_runner: BuilderResources
) -> None:
    job = _job(catalog, ci_runner)
    (config,) = [c for c in all_python_configurations() if c.identifier == IDENTIFIER]
    dockerfile = job.dockerfile
    assert f"python3.11 -m venv {config.path}" in dockerfile
    assert f"{config.path}/bin/pip install build==" in dockerfile
    assert " virtualenv==" in dockerfile  # cibuildwheel's pin: its test step downloads nothing
    # OCIContainer.UTILITY_PYTHON
    assert 'ln -s "$(command -v python3)" /opt/python/cp39-cp39/bin/python' in dockerfile
    assert f"\nFROM {job.spec.target.base_image.pinned}\n" in dockerfile
    assert cibw.image_reference(job).startswith("farm.local/cibw-bookworm-arm64:")


def test_cibuildwheel_and_its_pins_shape_the_build_key(
    catalog: Catalog, ci_runner: BuilderResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _job(catalog, ci_runner)
    monkeypatch.setattr(driver, "version", lambda: "99.0")
    after = _job(catalog, ci_runner)
    assert before.build_key != after.build_key
    assert cibw.image_reference(before) != cibw.image_reference(after)


def test_cross_and_cuda_are_refused_when_planning(
    catalog: Catalog, ci_runner: BuilderResources
) -> None:
    with pytest.raises(IncompatibleError, match="runs emulated only: --strategy cross"):
        plan_job(catalog, "lru-dict", "bookworm-arm64", resources=ci_runner, strategy="cross")
    with pytest.raises(IncompatibleError, match="cannot build for CUDA targets"):
        plan_job(catalog, "lru-dict", "standin-cuda12", resources=ci_runner)


def test_cross_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan", "lru-dict", "--target", "bookworm-arm64", "--strategy", "cross"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("farm: error: lru-dict builds with cibuildwheel")
    assert len([line for line in error.splitlines() if "error:" in line]) == 1


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("versions:", "strategy: {bookworm-arm64: cross}\nversions:", "strategy.bookworm-arm64"),
        ("versions:", "needs: [cuda]\nversions:", "needs"),
        ("  kind: archive\n", "  kind: archive\n  patches: [fix.patch]\n", "source.patches"),
        (".tar.gz\n", ".zip\n", "source"),
    ],
)
def test_recipes_it_cannot_build_are_catalog_errors(
    catalog_copy: Path, old: str, new: str, field: str
) -> None:
    recipe = catalog_copy / "packages" / "lru-dict.yaml"
    recipe.write_text(recipe.read_text().replace(old, new, 1))
    with pytest.raises(CatalogError) as caught:
        load_catalog([catalog_copy])
    assert caught.value.field == field


def _fake_docker(tmp_path: Path) -> Path:
    """A docker client that records its arguments and lists one leftover container."""
    calls = tmp_path / "calls"
    docker = tmp_path / "docker"
    docker.write_text(
        textwrap.dedent(f"""\
            #!/bin/sh
            echo "$*" >> {calls}
            if [ "$1" = ps ]; then echo c0ffee; fi
            if [ "$1" = version ]; then echo 20.10.24; fi
            """)
    )
    docker.chmod(0o755)
    return calls


def test_a_driven_program_is_logged_with_its_options_and_its_containers_removed(
    tmp_path: Path,
) -> None:
    calls = _fake_docker(tmp_path)
    engine = Engine(kind="buildx", docker=str(tmp_path / "docker"), client_version="28.2")
    program = [sys.executable, "-c", "import os; print(os.environ['CIBW_BUILD'])"]
    with EngineRunner(engine, "build", lambda line: None, log_path=tmp_path / "log") as runner:
        result = runner.drive(program, env={"CIBW_BUILD": IDENTIFIER}, failed=RuntimeError)
    assert result.output == IDENTIFIER
    assert f"+ CIBW_BUILD={IDENTIFIER} " in (tmp_path / "log").read_text()
    assert runner.commands[0][1] == {"CIBW_BUILD": IDENTIFIER}
    recorded = calls.read_text().splitlines()
    assert recorded == [
        f"ps --all --quiet --filter label=farm.runner={runner.token}",
        "rm --force c0ffee",
    ]


def test_a_driven_program_that_fails_is_the_stages_failure(tmp_path: Path) -> None:
    _fake_docker(tmp_path)
    engine = Engine(kind="buildx", docker=str(tmp_path / "docker"), client_version="28.2")
    program = [sys.executable, "-c", "raise SystemExit('cibuildwheel: build failed')"]

    def failed(result: Finished) -> IncompatibleError:
        return IncompatibleError(result.failing_line())

    with (
        EngineRunner(engine, "build", lambda line: None) as runner,
        pytest.raises(IncompatibleError, match="build failed"),
    ):
        runner.drive(program, failed=failed)
