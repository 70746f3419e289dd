"""Without a GPU, onnxruntime's CUDA provider must load and then name the missing driver.

The check runs a session in a child process; a stand-in onnxruntime module on PYTHONPATH
plays each behaviour: printing the reason and falling back, aborting the process (1.21 does
when libcuda.so.1 is missing), or failing to load a library of the provider.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from farm.smoke_checks import onnxruntime_check as check


@pytest.fixture(autouse=True)
def fresh_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(check, "CHECKS", [])
    monkeypatch.setattr(check, "INFO", {})


def _fake_onnxruntime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    (tmp_path / "onnxruntime.py").write_text(
        "import os, sys\n"
        "class InferenceSession:\n"
        "    def __init__(self, model, providers):\n"
        f"{body}"
        "    def get_providers(self):\n"
        "        return self.used\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))


def test_a_missing_driver_reported_with_a_fallback_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_onnxruntime(
        tmp_path,
        monkeypatch,
        "        print('EP Error CUDA failure 35: CUDA driver version is insufficient')\n"
        "        self.used = ['CPUExecutionProvider']\n",
    )
    check.no_device_check("model.onnx", sys.executable)
    (result,) = check.CHECKS
    assert result["ok"], result
    assert "CUDA failure 35" in str(result["detail"])


def test_an_abort_that_names_the_driver_passes_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_onnxruntime(
        tmp_path,
        monkeypatch,
        "        sys.stderr.write('what():  cudaDriverWrapper.cc:42 onnxruntime::contrib::cuda::"
        "CUDADriverWrapper::CUDADriverWrapper() handle != nullptr was false.\\n')\n"
        "        sys.stderr.flush()\n"
        "        os.abort()\n",
    )
    check.no_device_check("model.onnx", sys.executable)
    (result,) = check.CHECKS
    assert result["ok"], result
    assert "ended the process with signal 6" in str(result["detail"])


def test_a_provider_library_that_cannot_load_fails_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_onnxruntime(
        tmp_path,
        monkeypatch,
        "        raise RuntimeError('libcudnn.so.9: cannot open shared object file')\n",
    )
    check.no_device_check("model.onnx", sys.executable)
    (result,) = check.CHECKS
    assert not result["ok"]
    assert "libcudnn.so.9" in str(result["detail"])


def test_a_session_that_claims_cuda_without_a_gpu_fails_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_onnxruntime(
        tmp_path,
        monkeypatch,
        "        print('cudaErrorNoDevice')\n        self.used = ['CUDAExecutionProvider']\n",
    )
    check.no_device_check("model.onnx", sys.executable)
    assert not check.CHECKS[0]["ok"]
