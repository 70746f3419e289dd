from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from farm.catalog import Catalog
from farm.errors import CatalogError
from farm.plan import BuildJob, plan_job
from farm.render import shell_join, shell_lines
from farm.resources import BuilderResources

SECRET_WORDS = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|CREDENTIAL|API_KEY", re.IGNORECASE)


@pytest.fixture
def job(catalog: Catalog, ci_runner: BuilderResources) -> BuildJob:
    return plan_job(
        catalog, "onnxruntime-gpu", "jetpack6", resources=ci_runner, strategy="emulated"
    )


def _instructions(dockerfile: str) -> list[str]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    return [
        line.strip()
        for line in joined.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_starts_from_the_target_base_image_and_ends_with_only_wheels(job: BuildJob) -> None:
    froms = [line for line in _instructions(job.dockerfile) if line.startswith("FROM ")]
    assert froms[0] == "FROM nvcr.io/nvidia/l4t-jetpack:r36.4.0 AS toolchain"
    assert froms[-1] == "FROM scratch AS wheels"
    assert _instructions(job.dockerfile)[-1] == "COPY --from=build /farm/wheels/ /"


def test_no_syntax_directive(job: BuildJob) -> None:
    # A `# syntax=` line makes BuildKit pull a frontend image; no registry is assumed reachable.
    assert not re.search(r"^#\s*syntax\s*=", job.dockerfile, re.MULTILINE | re.IGNORECASE)


def test_cache_mounts_for_ccache_and_pip(job: BuildJob) -> None:
    text = job.dockerfile
    assert "--mount=type=cache,id=farm-ccache-jetpack6,target=/root/.cache/ccache" in text
    assert "--mount=type=cache,id=farm-pip-jetpack6,target=/root/.cache/pip" in text


def test_credentials_only_through_secret_mounts(job: BuildJob) -> None:
    for line in _instructions(job.dockerfile):
        if line.startswith(("ARG ", "ENV ", "LABEL ")):
            assert not SECRET_WORDS.search(line), line
    assert "--mount=type=secret,id=farm-pip-conf" in job.dockerfile
    assert "--mount=type=secret,id=farm-ca-bundle" in job.dockerfile


def test_build_step_runs_the_planned_command(job: BuildJob) -> None:
    run = next(line for line in _instructions(job.dockerfile) if "tools/ci_build/build.py" in line)
    words = shlex.split(run)
    start = words.index("farm-with-network") + 1
    end = words.index("&&")
    rendered = [
        word.replace("${FARM_JOBS}", job.build_args["FARM_JOBS"]).replace(
            "${FARM_NVCC_THREADS}", job.build_args["FARM_NVCC_THREADS"]
        )
        for word in words[start:end]
    ]
    assert rendered == list(job.build_command)


def test_source_is_cloned_at_the_release_tag(job: BuildJob) -> None:
    clone = next(line for line in _instructions(job.dockerfile) if "git clone" in line)
    assert "--branch v1.23.2 --recurse-submodules" in clone
    assert "https://github.com/microsoft/onnxruntime.git" in clone


def test_cmake_is_pinned(job: BuildJob) -> None:
    assert "'cmake>=3.28,<4'" in job.dockerfile


def test_shell_join_keeps_placeholders_expandable() -> None:
    assert (
        shell_join(["--parallel", "${FARM_JOBS}", "A=1;2"]) == "--parallel \"${FARM_JOBS}\" 'A=1;2'"
    )
    assert (
        shell_lines(["python", "b.py", "--x", "1", "--y"], "  ")
        == "python b.py \\\n  --x 1 \\\n  --y"
    )


def test_undefined_template_value_is_an_error(
    job: BuildJob, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "onnxruntime.Dockerfile.j2").write_text("FROM {{ no_such_value }}\n")
    monkeypatch.setattr("farm.render.data_dir", lambda name: tmp_path)
    from farm.render import render_dockerfile

    with pytest.raises(CatalogError, match="undefined value: 'no_such_value' is undefined"):
        render_dockerfile(job.spec)


def test_missing_template_names_the_recipe_field(
    job: BuildJob, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("farm.render.data_dir", lambda name: tmp_path)
    from farm.render import render_dockerfile

    with pytest.raises(CatalogError) as caught:
        render_dockerfile(job.spec)
    assert caught.value.field == "build.dockerfile"


def test_repair_on_jetpack5_installs_a_newer_python_for_auditwheel(catalog: Catalog) -> None:
    from farm.repair import render_repair

    jetpack5 = catalog.targets["jetpack5"].model
    lines = _instructions(render_repair("x-1.0-cp38-cp38-linux_aarch64.whl", jetpack5, "3.8"))
    apt = next(line for line in lines if "apt-get install" in line)
    # strip for auditwheel --strip, and the newer Python, each only where the image lacks it.
    assert "for p in binutils python3.9 python3.9-venv;" in apt
    venv = next(line for line in lines if " -m venv " in line)
    assert "python3.9 -m venv /opt/farm/repair" in venv
    assert lines.index(apt) < lines.index(venv)
    jetpack6 = catalog.targets["jetpack6"].model
    rendered = render_repair("x-1.0-cp310-cp310-linux_aarch64.whl", jetpack6, "3.10")
    assert "for p in binutils;" in rendered
    assert "python3.9" not in rendered
    assert "python3.10 -m venv /opt/farm/repair" in rendered
