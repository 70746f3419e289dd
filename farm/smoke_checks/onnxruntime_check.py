"""Smoke test of an onnxruntime wheel, run inside the target container.

Usage: python onnxruntime_check.py MODEL PROVIDERS DEVICE W_JSON B_JSON NUMPY SCOPE

MODEL computes Y = Relu(X @ W + B) with W and B stored in it as initializers
(farm.smoke.onnx_model writes it); this script recomputes Y with numpy from
the same W and B. PROVIDERS is the comma-separated list the wheel must have
compiled in. DEVICE is "on" (the session must run on the first GPU one),
"off" (CPU only, as under QEMU) or "auto": on when this container sees a
Jetson GPU (the device nodes NVIDIA's container runtime passes in). NUMPY
names the NumPy major of this environment ("numpy 2.x") for a check that
fails before numpy imports; the checks that depend on NumPy are named with
the version that imported ("inference numpy 2.3.5"). SCOPE "full" runs every
check, "inference" only those that depend on NumPy: import, session, device
and inference (the farm runs "full" under one NumPy major, "inference" under
the other).
It prints one JSON line: {"checks": [{"name", "ok", "detail"}], "info": {...}}.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

CHECKS: list[dict[str, object]] = []
INFO: dict[str, object] = {}


# Device nodes of the integrated GPU on L4T (nvgpu driver); JetPack 5 and 6
# use nvhost-ctrl-gpu, newer kernels the nvgpu/igpu0 directory.
JETSON_GPU_NODES = ("/dev/nvhost-ctrl-gpu", "/dev/nvgpu/igpu0/ctrl", "/dev/nvidia0")
# What NumPy 2 prints on stderr, and then goes on, when an extension compiled against
# NumPy 1.x loads; the extension's first use of the array API may then crash the process.
NUMPY_ABI_MISMATCH = re.compile(r"compiled using NumPy (\S+) cannot be run in NumPy (\S+)")


def check(name: str, ok: bool, detail: str) -> bool:
    CHECKS.append({"name": name, "ok": bool(ok), "detail": detail})
    return bool(ok)


def device_present() -> bool:
    return any(Path(node).exists() for node in JETSON_GPU_NODES)


def run(
    model: str,
    expected: list[str],
    device: str,
    w: list[list[float]],
    b: list[float],
    numpy_label: str = "numpy",
    scope: str = "full",
) -> None:
    on_device = device == "on" or (device == "auto" and device_present())
    INFO["device_mode"] = device
    INFO["on_device"] = on_device
    modules = import_modules(numpy_label)
    if modules is None:
        return
    np, ort = modules
    label = f"numpy {np.__version__}"
    if scope == "full":
        providers_check(ort, expected)
    session = make_session(ort, model, expected, on_device, label, full=scope == "full")
    if session is None:
        return
    x = (np.arange(6, dtype=np.float32).reshape(2, 3) / 7.0) - 0.3
    try:
        (y,) = session.run(None, {"X": x})
    except Exception as exc:
        check(f"inference {label}", False, f"{type(exc).__name__}: {exc}")
        return
    reference = np.maximum(x @ np.array(w, dtype=np.float32) + np.array(b, dtype=np.float32), 0)
    error = float(np.max(np.abs(y - reference))) if y.shape == reference.shape else float("inf")
    detail = f"max abs error {error:.1e} against numpy, shape {y.shape}"
    check(f"inference {label}", error <= 1e-5, detail)


def import_modules(numpy_label: str) -> tuple[Any, Any] | None:
    """numpy and onnxruntime, or None after a failed import check."""
    try:
        import numpy as np
    except Exception as exc:
        check(f"import {numpy_label}", False, f"numpy: {type(exc).__name__}: {exc}")
        return None
    INFO["numpy"] = np.__version__
    name = f"import numpy {np.__version__}"
    printed = io.StringIO()
    try:
        with contextlib.redirect_stderr(printed):
            import onnxruntime as ort
        failure = numpy_mismatch(printed.getvalue(), ort.__version__)
    except Exception as exc:
        failure = f"{type(exc).__name__}: {exc}"
    sys.stderr.write(printed.getvalue())  # for the log
    if failure:
        check(name, False, failure)
        return None
    check(name, True, f"onnxruntime {ort.__version__}")
    INFO.update(version=ort.__version__, device=ort.get_device())
    return np, ort


def numpy_mismatch(printed: str, version: str) -> str:
    """What NumPy printed when onnxruntime's extension is built for another NumPy; "" if not."""
    found = NUMPY_ABI_MISMATCH.search(" ".join(printed.split()))
    if found is None:
        return ""
    return (
        f"onnxruntime {version} was compiled using NumPy {found[1]} and cannot be run in "
        f"NumPy {found[2]} (NumPy: it may crash)"
    )


def providers_check(ort: Any, expected: list[str]) -> None:
    available = ort.get_available_providers()
    INFO["available_providers"] = available
    missing = [p for p in expected if p not in available]
    detail = f"compiled in: {', '.join(available)}"
    if missing:
        detail += f"; missing: {', '.join(missing)}"
    check("providers", not missing, detail)


def make_session(
    ort: Any, model: str, expected: list[str], on_device: bool, label: str, *, full: bool
) -> Any:
    """The session the inference runs in, on the GPU when on a device; None if it failed."""
    gpu = [p for p in expected if p != "CPUExecutionProvider"]
    requested = [*gpu, "CPUExecutionProvider"] if on_device else ["CPUExecutionProvider"]
    try:
        session = ort.InferenceSession(model, providers=requested)
    except Exception as exc:
        check(f"session {label}", False, f"{type(exc).__name__}: {exc}")
        return None
    used = session.get_providers()
    INFO["session_providers"] = used
    if on_device and gpu:
        # Falling back to the CPU on a Jetson means a library or SM architecture is missing.
        check(f"device {label}", used[0] in gpu, f"session runs on {used[0]}, wanted {gpu[0]}")
    elif full and "CUDAExecutionProvider" in gpu:
        no_device_check(model)
    return session


# What onnxruntime and the CUDA runtime say when a machine has no NVIDIA driver or GPU.
# onnxruntime 1.21's CUDA provider opens libcuda.so.1 when it loads (CUDADriverWrapper) and
# aborts the process when that fails.
NO_DRIVER = (
    "driver version is insufficient",
    "cudaErrorInsufficientDriver",
    "no CUDA-capable device",
    "cudaErrorNoDevice",
    "CUDA failure 35",
    "CUDA failure 100",
    "CUDADriverWrapper",
    "libcuda.so.1: cannot open shared object file",
)
SESSION_CODE = """
import sys
import onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CUDAExecutionProvider"])
print("farm-providers", ",".join(session.get_providers()))
"""


def no_device_check(model: str, python: str = sys.executable, timeout: float = 900) -> None:
    """Without a GPU the CUDA provider must load and then refuse for want of a driver.

    The session is made in a child process: onnxruntime may abort the process
    (1.21 does when libcuda.so.1 is missing). A provider library that cannot
    load (a missing cuDNN or cuBLAS) says so in the same output and fails this
    check: that is what would break on a device.
    """
    import resource
    import subprocess

    def no_core_dump() -> None:  # a core dump of an emulated process can hang QEMU
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    try:
        child = subprocess.run(
            [python, "-c", SESSION_CODE, model],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            preexec_fn=no_core_dump,
        )
    except subprocess.TimeoutExpired:
        check("cuda_without_device", False, f"no answer within {timeout:.0f} s")
        return
    lines = [line.strip() for line in (child.stdout + child.stderr).splitlines() if line.strip()]
    used = next((line.split()[1] for line in lines if line.startswith("farm-providers ")), "")
    reason = next((line for line in lines if any(mark in line for mark in NO_DRIVER)), "")
    INFO["cuda_without_device"] = lines[-4:]
    ok = "CUDAExecutionProvider" not in used.split(",") and bool(reason)
    detail = reason or (lines or ["no message"])[-1]
    if child.returncode < 0:
        detail += f" (onnxruntime ended the process with signal {-child.returncode})"
    check("cuda_without_device", ok, f"CUDA provider without a GPU: {detail[:400]}")


if __name__ == "__main__":
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash must not hang QEMU on its core
    try:
        run(
            sys.argv[1],
            [p for p in sys.argv[2].split(",") if p],
            sys.argv[3],
            json.loads(sys.argv[4]),
            json.loads(sys.argv[5]),
            *sys.argv[6:8],
        )
    except Exception as exc:
        check("script", False, f"{type(exc).__name__}: {exc}")
    print(json.dumps({"checks": CHECKS, "info": INFO}))
