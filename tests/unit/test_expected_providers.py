"""One answer to "which providers must this wheel have on this target", whoever asks.

`farm inspect` and `farm smoke` ask with a wheel file name, the runner with its job's recipe;
here each is run with its stages replaced by recorders, so what reaches inspect_wheel and
run_smoke is compared, not what a helper would return.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from farm import console, pipeline, wheels
from farm.catalog import Catalog, load_catalog
from farm.cli import _main, main
from farm.engine import Engine
from farm.ledger import Ledger
from farm.pipeline import PipelineOptions, Runner
from farm.plan import BuildJob, plan_job
from farm.resources import BuilderResources
from farm.smoke import SmokeReport, expected_providers, find_smoke
from tests.registries.wheels import make_wheel

TRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
ORT_GPU = "onnxruntime_gpu-1.23.2-cp310-cp310-manylinux_2_35_aarch64.whl"


@pytest.mark.parametrize(
    ("wheel", "target", "expected"),
    [
        (ORT_GPU, "jetpack6", (TRT, CUDA, CPU)),
        ("ONNXRuntime_GPU-1.23.2-cp310-cp310-linux_aarch64.whl", "jp6", (TRT, CUDA, CPU)),
        (ORT_GPU, "standin-cuda12", (CUDA, CPU)),  # no TensorRT there
        (ORT_GPU, "bookworm-arm64", (CPU,)),
        ("onnxruntime-1.20.1-cp310-cp310-manylinux_2_27_aarch64.whl", "jetpack6", (CPU,)),
        ("onnxruntime_extensions-0.13.0-cp310-cp310-linux_aarch64.whl", "jetpack6", ()),
        ("farm_demo-0.1.0-cp311-cp311-linux_aarch64.whl", "bookworm-arm64", ()),
        ("requests-2.32.3-py3-none-any.whl", "jetpack6", ()),
    ],
)
def test_providers_for_a_wheel_name(
    catalog: Catalog, wheel: str, target: str, expected: tuple[str, ...]
) -> None:
    assert expected_providers(find_smoke(catalog, wheel), catalog.target(target).model) == expected


def _wheel_name(job: BuildJob) -> str:
    recipe, python = job.spec.recipe, job.spec.python.replace(".", "")
    distribution = (recipe.distribution or recipe.name).replace("-", "_")
    return f"{distribution}-{job.spec.version}-cp{python}-cp{python}-linux_aarch64.whl"


class _Recorder:
    """Stands in for every stage; keeps the providers inspect_wheel and run_smoke were given."""

    def __init__(self, tmp_path: Path, wheel_name: str) -> None:
        name, version, tag = wheel_name[: -len(".whl")].split("-", 2)
        self.wheel = make_wheel(tmp_path / "wheels", name, version, tag=tag)
        self.asked: dict[str, tuple[str, ...]] = {}

    def inspect_wheel(self, wheel: Path, target: Any, expect: tuple[str, ...]) -> Any:
        self.asked["inspect"] = tuple(expect)
        return SimpleNamespace(compatible=True, problems=[], to_json=dict, providers=[], tags=[])

    def run_smoke(self, wheel: Path, target: Any, *args: Any, **kwargs: Any) -> SmokeReport:
        self.asked["smoke"] = tuple(kwargs["expect_providers"])
        return SmokeReport(
            wheel=wheel.name,
            target=target.name,
            passed=True,
            checks=[],
            info={},
            environment="cached",
            duration_s=0.0,
        )

    def build(self, *args: Any, **kwargs: Any) -> Any:
        return SimpleNamespace(wheels=[self.wheel], log=self.wheel, duration_s=1.0, toolchain={})

    def repair(self, built: Path, *args: Any) -> Any:
        return SimpleNamespace(wheel=built, size_before=1, size_after=1)


def _runner_asks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, job: BuildJob
) -> dict[str, tuple[str, ...]]:
    recorder = _Recorder(tmp_path / "runner", _wheel_name(job))
    for name, fake in (
        ("images_for", lambda *args: []),
        ("run_build", recorder.build),
        ("run_repair", recorder.repair),
        ("inspect_wheel", recorder.inspect_wheel),
        ("run_smoke", recorder.run_smoke),
    ):
        monkeypatch.setattr(pipeline, name, fake)
    options = PipelineOptions(out_root=tmp_path / "out", cache_dir=tmp_path / "cache")
    ledger = Ledger(tmp_path / "state")
    engine = cast(Engine, SimpleNamespace(describe=lambda: "no engine: every stage is faked"))
    result = Runner(job, engine, ledger, options, console.section, lambda line: None).run()
    assert result.ok, result.error
    return recorder.asked


def _cli_asks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, catalog_dir: Path, wheel: str, target: str
) -> dict[str, tuple[str, ...]]:
    recorder = _Recorder(tmp_path / "cli", wheel)
    monkeypatch.setattr(_main, "catalog_dirs", lambda configured, extra: [catalog_dir])
    monkeypatch.setattr(wheels, "preflight", lambda *args: None)
    monkeypatch.setattr(wheels, "ensure_base_image", lambda *args: None)
    monkeypatch.setattr(wheels, "inspect_wheel", recorder.inspect_wheel)
    monkeypatch.setattr(wheels, "run_smoke", recorder.run_smoke)
    assert main(["inspect", str(recorder.wheel), "--target", target, "--json"]) == 0
    assert main(["smoke", str(recorder.wheel), "--target", target]) == 0
    return recorder.asked


def _recipe_named_apart(catalog_copy: Path) -> Path:
    """onnxruntime-gpu's recipe under another name: a wheel must find it by its distribution."""
    packages = catalog_copy / "packages"
    text = (packages / "onnxruntime-gpu.yaml").read_text()
    text = text.replace(
        "name: onnxruntime-gpu\n", "name: ort-jetson\ndistribution: onnxruntime-gpu\n"
    )
    (packages / "ort-jetson.yaml").write_text(text)
    (packages / "onnxruntime-gpu.yaml").unlink()
    return catalog_copy


@pytest.mark.parametrize(
    ("package", "target", "expected"),
    [
        ("onnxruntime-gpu", "jetpack6", (TRT, CUDA, CPU)),
        ("onnxruntime-gpu", "standin-cuda12", (CUDA, CPU)),
        ("ort-jetson", "jetpack6", (TRT, CUDA, CPU)),
        ("demo", "bookworm-arm64", ()),
    ],
)
def test_smoke_inspect_and_the_runner_expect_the_same_providers(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    catalog_copy: Path,
    ci_runner: BuilderResources,
    package: str,
    target: str,
    expected: tuple[str, ...],
) -> None:
    catalog_dir = _recipe_named_apart(catalog_copy) if package == "ort-jetson" else catalog_copy
    job = plan_job(load_catalog([catalog_dir]), package, target, resources=ci_runner)
    from_runner = _runner_asks(monkeypatch, tmp_path, job)
    from_cli = _cli_asks(monkeypatch, tmp_path, catalog_dir, _wheel_name(job), target)
    assert from_runner == from_cli == {"inspect": expected, "smoke": expected}


@pytest.mark.parametrize(
    ("wheel", "target", "expected"),
    [
        ("onnxruntime-1.20.1-cp310-cp310-manylinux_2_27_aarch64.whl", "jetpack6", (CPU,)),
        (ORT_GPU, "bookworm-arm64", (CPU,)),  # no recipe rule lets the runner build it there
        ("farm_demo-0.1.0-cp310-cp310-linux_aarch64.whl", "jetpack6", ()),
    ],
)
def test_smoke_and_inspect_agree_on_wheels_the_runner_never_builds(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    catalog_copy: Path,
    wheel: str,
    target: str,
    expected: tuple[str, ...],
) -> None:
    asked = _cli_asks(monkeypatch, tmp_path, catalog_copy, wheel, target)
    assert asked == {"inspect": expected, "smoke": expected}


def test_an_unknown_wheel_has_no_expectations_and_no_smoke_test(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    recorder = _Recorder(tmp_path, "requests-2.32.3-py3-none-any.whl")
    monkeypatch.setattr(wheels, "inspect_wheel", recorder.inspect_wheel)
    assert main(["inspect", str(recorder.wheel), "--target", "jetpack6", "--json"]) == 0
    assert recorder.asked == {"inspect": ()}
    assert main(["smoke", str(recorder.wheel), "--target", "jetpack6"]) == 2
