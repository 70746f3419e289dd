"""The command line through ``main(argv)``: output shapes, exit codes and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from farm.cli import main
from farm.errors import EXIT_OK, EXIT_USAGE
from farm.schemas import SCHEMA_VERSIONS
from tests.conftest import BUILTIN_TARGETS, REPO


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_targets_json_lists_every_target(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "targets", "--json")
    assert code == 0
    document = json.loads(out)
    assert document["schema_version"] == 1
    by_name = {t["name"]: t for t in document["targets"]}
    assert set(by_name) == BUILTIN_TARGETS
    jp6 = by_name["jetpack6"]
    assert (
        jp6["cuda"]["version"],
        jp6["tensorrt"]["version"],
        jp6["python"],
        jp6["os"]["glibc"],
    ) == ("12.6", "10.3", ["3.10"], "2.35")
    assert by_name["bookworm-arm64"]["cuda"] is None


def test_targets_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "targets")
    assert code == 0
    assert "jetpack6" in out and "jp6" in out and "12.6" in out


def test_recipes_json_gives_default_versions(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "recipes", "--json")
    assert code == 0
    (recipe,) = [r for r in json.loads(out)["recipes"] if r["name"] == "onnxruntime-gpu"]
    assert recipe["default_versions"]["jetpack5"] == "1.16.3"
    assert recipe["default_versions"]["bookworm-arm64"] is None


def test_plan_json_is_one_versioned_job(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys,
        "plan",
        "onnxruntime-gpu",
        "--target",
        "jp6",
        "--json",
        "--builder-cpus",
        "2",
        "--builder-memory",
        "24",
    )
    assert code == 0
    document = json.loads(out)
    assert document["schema_version"] == 1
    (job,) = document["jobs"]
    assert job["target"] == "jetpack6"
    assert job["parallelism"]["builder_figures_from"] == "command line"
    assert len(job["build_key"]) == 64


def test_plan_with_python_rule_broken(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(
        capsys, "plan", "onnxruntime-gpu", "--target", "jetpack6", "--version", "1.24.1"
    )
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "onnxruntime-gpu.yaml: rules[" in err and "needs python >=3.11" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["plan", "onnxruntime-gpu", "--target", "jetpack9"], "unknown target 'jetpack9'"),
        (["plan", "tensorflow", "--target", "jp6"], "unknown package 'tensorflow'"),
        (["plan", "onnxruntime-gpu", "--target", "bookworm-arm64"], "needs a target with cuda"),
        (["plan", "onnxruntime-gpu", "--target", "jp6", "--python", "3.12"], "no python 3.12"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    code, _, err = _run(capsys, *argv)
    assert code == 2
    assert err.startswith("farm: error: ")
    assert expected in err.splitlines()[0]


def test_broken_user_catalog(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "mine.yaml").write_text("name: mine\nplatfrom: linux/arm64\n")
    code, _, err = _run(capsys, "--recipes", str(tmp_path), "targets")
    assert code == 2
    assert "mine.yaml: platfrom: unknown field" in err


def test_user_catalog_file_named_other_than_its_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "packages").mkdir()
    recipe = (REPO / "recipes" / "packages" / "zstandard.yaml").read_text()
    (tmp_path / "packages" / "zstd.yaml").write_text(recipe)
    code, out, err = _run(capsys, "--recipes", str(tmp_path), "recipes")
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1
    assert "zstd.yaml: name: 'zstandard' differs from the file name 'zstd.yaml'" in err


def test_render_writes_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    output = tmp_path / "Dockerfile"
    code, out, err = _run(capsys, "render", "onnxruntime-gpu", "--target", "jp5", "-o", str(output))
    assert code == 0 and out == ""
    assert output.read_text().startswith("# onnxruntime-gpu 1.16.3 for jetpack5")
    assert "build key" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["plan", "onnxruntime-gpu"])
    assert caught.value.code == 2
    assert "--target" in capsys.readouterr().err


def test_a_stand_in_dry_run_names_its_assembled_cuda_stack(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FARM_CACHE_DIR", str(tmp_path / "cache"))
    code, out, err = _run(capsys, "build", "demo-cuda", "--target", "standin-cuda13", "--dry-run")
    assert code == 0, err
    assert "# CUDA 13.0: stack cuda-13.0-pypi assembled from 6 pinned packages" in out
    assert "COPY" not in out  # commands only, not the Dockerfile
    code, out, _ = _run(capsys, "plan", "demo-cuda", "--target", "standin-cuda13", "--json")
    toolkit = json.loads(out)["jobs"][0]["cuda_toolkit"]
    assert toolkit["from"] == "packages"
    assert [p["name"] for p in toolkit["packages"]][:2] == ["nvidia-cuda-nvcc", "nvidia-nvvm"]
    code, out, _ = _run(capsys, "plan", "onnxruntime-gpu", "--target", "jetpack6", "--json")
    assert json.loads(out)["jobs"][0]["cuda_toolkit"]["from"] == "image"


def test_a_bad_setting_is_a_usage_error_before_any_command_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FARM_PUBLISH_BACKOFF_S", "soon")
    assert main(["targets", "--json"]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.err.splitlines()[0] == (
        "farm: error: environment variable FARM_PUBLISH_BACKOFF_S='soon' is not a number"
    )
    assert json.loads(captured.out)["error"]["kind"] == "usage"


def test_every_printed_document_takes_its_version_from_the_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv, name in (
        (["targets", "--json"], "targets"),
        (["recipes", "--json"], "recipes"),
        (["plan", "demo", "--target", "bookworm-arm64", "--json"], "plan"),
        (["build", "demo", "--target", "bookworm-arm64", "--dry-run", "--json"], "build"),
    ):
        assert main(argv) == EXIT_OK
        assert json.loads(capsys.readouterr().out)["schema_version"] == SCHEMA_VERSIONS[name]
    assert SCHEMA_VERSIONS["build"] == 2 and SCHEMA_VERSIONS["repair"] == 1


def test_the_readme_lists_every_document_at_its_version() -> None:
    """The README's "JSON documents" table and farm/schemas.py say the same."""
    from farm.schemas import SCHEMA_VERSIONS

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    table = readme.split("### JSON documents", 1)[1].split("\n### ", 1)[0]
    listed: dict[str, int] = {}
    for row in table.splitlines():
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        if len(cells) == 3 and cells[1].isdigit():
            listed.update(dict.fromkeys(cells[0].split(", "), int(cells[1])))
    documents = {name: version for name, version in SCHEMA_VERSIONS.items() if name != "pipeline"}
    assert {name: listed.get(name) for name in documents} == documents
