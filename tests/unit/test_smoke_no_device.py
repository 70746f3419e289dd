"""Without a GPU, onnxruntime's CUDA provider must load and then name the missing driver."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from farm.smoke_checks import onnxruntime_check as check


class _Session:
    def __init__(self, providers: list[str]) -> None:
        self._providers = providers

    def get_providers(self) -> list[str]:
        return self._providers


def _ort(*, prints: str = "", raises: str = "", used: tuple[str, ...] = ()) -> SimpleNamespace:
    """An onnxruntime stand-in whose session prints (as onnxruntime's fallback does) or raises."""

    def session(model: str, providers: list[str]) -> _Session:
        if prints:
            print(prints)
            sys.stdout.flush()
        if raises:
            raise RuntimeError(raises)
        return _Session(list(used))

    return SimpleNamespace(InferenceSession=session)


@pytest.fixture(autouse=True)
def fresh_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(check, "CHECKS", [])
    monkeypatch.setattr(check, "INFO", {})


def test_a_missing_driver_is_what_a_machine_without_a_gpu_should_report() -> None:
    ort = _ort(
        prints="EP Error CUDA failure 35: CUDA driver version is insufficient for CUDA runtime "
        "version ; GPU=0 ; when using ['CUDAExecutionProvider']",
        used=("CPUExecutionProvider",),
    )
    check.no_device_check(ort, "model.onnx")
    (result,) = check.CHECKS
    assert result["ok"], result
    assert "CUDA failure 35" in str(result["detail"])


def test_a_provider_library_that_cannot_load_fails_the_check() -> None:
    ort = _ort(raises="libcudnn.so.9: cannot open shared object file: No such file or directory")
    check.no_device_check(ort, "model.onnx")
    (result,) = check.CHECKS
    assert not result["ok"]
    assert "libcudnn.so.9" in str(result["detail"])


def test_a_session_that_claims_cuda_without_a_gpu_fails_the_check() -> None:
    ort = _ort(prints="cudaErrorNoDevice", used=("CUDAExecutionProvider",))
    check.no_device_check(ort, "model.onnx")
    assert not check.CHECKS[0]["ok"]
