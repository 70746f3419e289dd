"""Smoke test of an onnxruntime wheel, run inside the target container.

Usage: python onnxruntime_check.py MODEL PROVIDERS DEVICE W_JSON B_JSON

MODEL computes Y = Relu(X @ W + B) with W and B stored in it as initializers
(farm.smoke.onnx_model writes it); this script recomputes Y with numpy from
the same W and B. PROVIDERS is the comma-separated list the wheel must have
compiled in. DEVICE is "on" (the session must run on the first GPU one),
"off" (CPU only, as under QEMU) or "auto": on when this container sees a
Jetson GPU (the device nodes NVIDIA's container runtime passes in).
It prints one JSON line: {"checks": [{"name", "ok", "detail"}], "info": {...}}.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

CHECKS: list[dict[str, object]] = []
INFO: dict[str, object] = {}


# Device nodes of the integrated GPU on L4T (nvgpu driver); JetPack 5 and 6
# use nvhost-ctrl-gpu, newer kernels the nvgpu/igpu0 directory.
JETSON_GPU_NODES = ("/dev/nvhost-ctrl-gpu", "/dev/nvgpu/igpu0/ctrl", "/dev/nvidia0")


def check(name: str, ok: bool, detail: str) -> bool:
    CHECKS.append({"name": name, "ok": bool(ok), "detail": detail})
    return bool(ok)


def device_present() -> bool:
    return any(Path(node).exists() for node in JETSON_GPU_NODES)


def run(model: str, expected: list[str], device: str, w: list[list[float]], b: list[float]) -> None:
    on_device = device == "on" or (device == "auto" and device_present())
    INFO["device_mode"] = device
    INFO["on_device"] = on_device
    try:
        import numpy as np
        import onnxruntime as ort
    except Exception as exc:
        check("import", False, f"{type(exc).__name__}: {exc}")
        return
    check("import", True, f"onnxruntime {ort.__version__}")
    INFO.update(version=ort.__version__, device=ort.get_device())
    available = ort.get_available_providers()
    INFO["available_providers"] = available
    missing = [p for p in expected if p not in available]
    detail = f"compiled in: {', '.join(available)}"
    if missing:
        detail += f"; missing: {', '.join(missing)}"
    check("providers", not missing, detail)
    gpu = [p for p in expected if p != "CPUExecutionProvider"]
    requested = [*gpu, "CPUExecutionProvider"] if on_device else ["CPUExecutionProvider"]
    try:
        session = ort.InferenceSession(model, providers=requested)
    except Exception as exc:
        check("session", False, f"{type(exc).__name__}: {exc}")
        return
    used = session.get_providers()
    INFO["session_providers"] = used
    if on_device and gpu:
        # Falling back to the CPU on a Jetson means a library or SM architecture is missing.
        check("device", used[0] in gpu, f"session runs on {used[0]}, wanted {gpu[0]}")
    elif "CUDAExecutionProvider" in gpu:
        no_device_check(ort, model)
    x = (np.arange(6, dtype=np.float32).reshape(2, 3) / 7.0) - 0.3
    (y,) = session.run(None, {"X": x})
    reference = np.maximum(x @ np.array(w, dtype=np.float32) + np.array(b, dtype=np.float32), 0)
    error = float(np.max(np.abs(y - reference))) if y.shape == reference.shape else float("inf")
    check("result", error <= 1e-5, f"max abs error {error:.1e} against numpy, shape {y.shape}")


# What onnxruntime and the CUDA runtime say when a machine has no NVIDIA driver or GPU.
NO_DRIVER = (
    "driver version is insufficient",
    "cudaErrorInsufficientDriver",
    "no CUDA-capable device",
    "cudaErrorNoDevice",
    "CUDA failure 35",
    "CUDA failure 100",
)


def no_device_check(ort: object, model: str) -> None:
    """Without a GPU the CUDA provider must load and then refuse for want of a driver.

    A provider library that cannot load (a missing cuDNN, cuBLAS) says so in
    the same place, and fails this check: that is what breaks on a device.
    """
    with CapturedOutput() as output:
        try:
            session = ort.InferenceSession(model, providers=["CUDAExecutionProvider"])  # type: ignore[attr-defined]
            used = session.get_providers()
        except Exception as exc:
            print(f"{type(exc).__name__}: {exc}")
            used = []
    text = output.read_text(errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = next((line for line in lines if any(mark in line for mark in NO_DRIVER)), "")
    INFO["cuda_without_device"] = lines[-3:]
    ok = "CUDAExecutionProvider" not in used and bool(reason)
    detail = reason or (lines or ["no message"])[-1]
    check("cuda_without_device", ok, f"CUDA provider without a GPU: {detail[:300]}")


class CapturedOutput:
    """Send output to a file for a while: file descriptors 1 and 2 (C++ logging) and
    Python's sys.stdout and sys.stderr (onnxruntime's fallback messages are printed)."""

    def __enter__(self) -> Path:
        import tempfile

        sys.stdout.flush()
        sys.stderr.flush()
        self.path = Path(tempfile.mkstemp(prefix="farm-smoke-")[1])
        self.saved = [os.dup(1), os.dup(2)]
        self.streams = (sys.stdout, sys.stderr)
        handle = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        os.dup2(handle, 1)
        os.dup2(handle, 2)
        os.close(handle)
        self.text = self.path.open("a", buffering=1)  # closed in __exit__
        sys.stdout = sys.stderr = self.text
        return self.path

    def __exit__(self, *exc: object) -> None:
        self.text.flush()
        sys.stdout, sys.stderr = self.streams
        self.text.close()
        # (zip(strict=) is 3.10+; this script also runs on JetPack 5's Python 3.8)
        for fd in (1, 2):
            saved = self.saved[fd - 1]
            os.dup2(saved, fd)
            os.close(saved)


if __name__ == "__main__":
    try:
        run(
            sys.argv[1],
            [p for p in sys.argv[2].split(",") if p],
            sys.argv[3],
            json.loads(sys.argv[4]),
            json.loads(sys.argv[5]),
        )
    except Exception as exc:
        check("script", False, f"{type(exc).__name__}: {exc}")
    print(json.dumps({"checks": CHECKS, "info": INFO}))
