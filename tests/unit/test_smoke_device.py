"""Where the smoke test decides whether the session must run on the GPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm import smoke
from farm.catalog import Catalog
from farm.smoke import VENV, DeviceMode, SmokeEnvironment, SmokePlan, check_argvs, host_device
from farm.smoke_numpy import NumpyMajor


@pytest.fixture
def on_jetson(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    release = tmp_path / "nv_tegra_release"
    release.write_text("# R36 (release), REVISION: 4.0\n")
    monkeypatch.setattr(smoke, "JETSON_RELEASE_FILE", release)
    monkeypatch.setattr(smoke.platform, "machine", lambda: "aarch64")
    return release


@pytest.fixture
def on_x86(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smoke, "JETSON_RELEASE_FILE", tmp_path / "absent")
    monkeypatch.setattr(smoke.platform, "machine", lambda: "x86_64")


@pytest.mark.usefixtures("on_x86")
@pytest.mark.parametrize(("asked", "resolved"), [("auto", "off"), ("on", "on"), ("off", "off")])
def test_under_qemu_auto_means_cpu_only(
    catalog: Catalog, asked: DeviceMode, resolved: DeviceMode
) -> None:
    assert host_device(catalog.targets["jetpack6"].model, asked) == resolved


@pytest.mark.usefixtures("on_jetson")
def test_on_a_jetson_auto_is_left_to_the_container(catalog: Catalog) -> None:
    jetpack6 = catalog.targets["jetpack6"].model
    assert host_device(jetpack6, "auto") == "auto"
    # A CPU-only target has no GPU to require, even on a Jetson.
    assert host_device(catalog.targets["bookworm-arm64"].model, "auto") == "off"
    record = smoke.host_details(jetpack6)
    assert record["jetson"] is True and record["emulated"] is False


@pytest.mark.usefixtures("on_jetson")
def test_the_nvidia_runtime_is_asked_for_unless_the_device_is_off() -> None:
    assert smoke._device_args("auto") == ["--runtime", "nvidia"]
    assert smoke._device_args("off") == []


def test_the_check_is_told_the_device_mode(catalog: Catalog) -> None:
    recipe = catalog.recipes["onnxruntime-gpu"].model
    plan = SmokePlan(
        environments=tuple(
            SmokeEnvironment(venv=f"{VENV}-numpy{n}", numpy=NumpyMajor(major=n)) for n in (2, 1)
        )
    )
    argvs = check_argvs(recipe.smoke, plan, "auto", ["CUDAExecutionProvider"])
    for argv in argvs:
        assert argv[2:5] == ["/farm/check/model.onnx", "CUDAExecutionProvider", "auto"]
    # The full check under the newest major; only what depends on NumPy under the other.
    assert [(argv[0], argv[-2:]) for argv in argvs] == [
        (f"{VENV}-numpy2/bin/python", ["numpy 2.x", "full"]),
        (f"{VENV}-numpy1/bin/python", ["numpy 1.x", "inference"]),
    ]
