"""The smoke stage: install a wheel in a fresh target container and prove it works.

An environment image per (target, wheel, dependencies) is built through
BuildKit: the target's base image, clean virtual environments, the wheel
installed in each with its dependencies from the index (through the CA/proxy
passthrough). An onnxruntime wheel gets one venv per NumPy major that applies
(farm.smoke_numpy decides which). The image is tagged by that content, so a
second smoke run of the same wheel only starts containers. The check itself
always runs, once per venv, in a fresh ``docker run --rm`` container of the
target platform (QEMU on x86_64), with the check script and model mounted
read-only, all of them within the timeout together. Checks report one JSON line; any
failed check fails the stage and is named.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import shutil
import signal
import struct
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from farm import __version__
from farm.catalog import Catalog, wheel_distribution
from farm.cudakernels import wheel_coverage
from farm.digest import sha256_file
from farm.engine import BuildRequest, Engine, image_exists
from farm.errors import SmokeFailed, TimedOut, UsageError, host_faults
from farm.models import OnnxruntimeSmoke, PythonSmoke, Smoke, Target
from farm.network import network_secrets, proxy_build_args
from farm.process import Finished
from farm.records import write_record
from farm.render import environment
from farm.runner import EngineRunner
from farm.schemas import SCHEMA_VERSIONS
from farm.smoke_numpy import MAJORS, PYTHONS_OF_MAJOR, NumpyMajor, numpy_majors, runnable
from farm.wheelfile import requires_dist

VENV = "/opt/farm/smoke"
CHECK_SCRIPTS = ("onnxruntime_check.py", "python_check.py")  # in farm/smoke_checks
# The check in its container: an import and one inference, minutes under QEMU at most.
CHECK_TIMEOUT_S = 900.0
# The model's constants: X [2,3] @ W [3,4] + B [4], then Relu.
MODEL_W = [[0.5, -1.0, 0.25, 2.0], [1.5, 0.75, -0.5, -2.0], [-1.25, 0.5, 1.0, 0.125]]
MODEL_B = [0.1, -0.2, 0.3, -0.4]


# "on": the session must run on the GPU; "off": CPU only (QEMU); "auto": on when
# the farm runs on a Jetson of the target's architecture and the container sees its GPU.
DeviceMode = Literal["auto", "on", "off"]
# L4T writes its release here; its presence is how a host says it is a Jetson.
JETSON_RELEASE_FILE = Path("/etc/nv_tegra_release")


@dataclass(frozen=True, kw_only=True)
class SmokeReport:
    wheel: str
    target: str
    passed: bool
    checks: list[dict[str, Any]]
    info: dict[str, Any]
    environment: str  # "cached" or "built"
    duration_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSIONS["smoke"],
            "wheel": self.wheel,
            "target": self.target,
            "passed": self.passed,
            "checks": self.checks,
            "info": self.info,
            "environment": self.environment,
            "duration_s": round(self.duration_s, 1),
        }

    def first_failure(self) -> dict[str, Any] | None:
        return next((check for check in self.checks if not check["ok"]), None)


# --- the ONNX model, written as protobuf by hand (onnx.proto field numbers) -----------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes | str | int) -> bytes:
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _tensor_type(dims: Sequence[int]) -> bytes:
    shape = b"".join(_field(1, _field(1, dim)) for dim in dims)  # TensorShapeProto.dim
    return _field(1, _field(1, 1) + _field(2, shape))  # TypeProto.tensor_type: FLOAT, shape


def _initializer(name: str, values: Sequence[float], dims: Sequence[int]) -> bytes:
    raw = struct.pack(f"<{len(values)}f", *values)
    return b"".join(_field(1, d) for d in dims) + _field(2, 1) + _field(8, name) + _field(9, raw)


def onnx_model() -> bytes:
    """ModelProto for Y = Relu(MatMul(X, W) + B), IR 7, opset 13 (onnxruntime >= 1.10)."""
    flat_w = [v for row in MODEL_W for v in row]
    nodes = [
        _field(1, "X") + _field(1, "W") + _field(2, "XW") + _field(4, "MatMul"),
        _field(1, "XW") + _field(1, "B") + _field(2, "XWB") + _field(4, "Add"),
        _field(1, "XWB") + _field(2, "Y") + _field(4, "Relu"),
    ]
    graph = (
        b"".join(_field(1, node) for node in nodes)
        + _field(2, "farm_smoke")
        + _field(5, _initializer("W", flat_w, (3, 4)))
        + _field(5, _initializer("B", MODEL_B, (4,)))
        + _field(11, _field(1, "X") + _field(2, _tensor_type((2, 3))))
        + _field(12, _field(1, "Y") + _field(2, _tensor_type((2, 4))))
    )
    opset = _field(1, "") + _field(2, 13)
    return _field(1, 7) + _field(2, "farm") + _field(7, graph) + _field(8, opset)


# --- environment image and the run ------------------------------------------------


# The smoke test of an onnxruntime wheel no recipe builds (PyPI's CPU onnxruntime).
GENERIC_ONNXRUNTIME_SMOKE = OnnxruntimeSmoke(
    kind="onnxruntime", expect_providers={"*": ("CPUExecutionProvider",)}
)
# Distributions named onnxruntime-* that do not install the onnxruntime module.
_ONNXRUNTIME_COMPANIONS = frozenset({"onnxruntime-extensions", "onnxruntime-genai"})


def find_smoke(catalog: Catalog, wheel_name: str) -> Smoke | None:
    """The smoke test a wheel gets: its recipe's; the generic one for an onnxruntime wheel no
    recipe builds; None for any other wheel."""
    entry = catalog.recipe_for_wheel(wheel_name)
    if entry is not None:
        return entry.model.smoke
    distribution = wheel_distribution(wheel_name)
    if distribution == "onnxruntime" or (
        distribution.startswith("onnxruntime-") and distribution not in _ONNXRUNTIME_COMPANIONS
    ):
        return GENERIC_ONNXRUNTIME_SMOKE
    return None


def check_status(check: dict[str, Any]) -> str:
    """How a check of a smoke report reads: ok, fail, or skip (a NumPy major not run)."""
    if check.get("skipped"):
        return "skip"
    return "ok" if check["ok"] else "fail"


def smoke_for_wheel(catalog: Catalog, wheel_name: str) -> Smoke:
    """:func:`find_smoke`, or a usage error for a wheel that has no smoke test."""
    smoke = find_smoke(catalog, wheel_name)
    if smoke is None:
        raise UsageError(
            f"no recipe builds {wheel_distribution(wheel_name)}, so there is no smoke test for it",
            hint="`farm recipes` lists the packages",
        )
    return smoke


def expected_providers(smoke: Smoke | None, target: Target) -> tuple[str, ...]:
    """The execution providers an onnxruntime wheel must have on ``target``; () for others.

    The one place they are decided: the runner asks with its job's smoke test, `farm smoke`
    and `farm inspect` with :func:`find_smoke`'s for the wheel, so all give the same answer.
    """
    return smoke.providers_for(target) if isinstance(smoke, OnnxruntimeSmoke) else ()


def wheel_providers(catalog: Catalog, wheel_name: str, target: Target) -> tuple[str, ...]:
    """:func:`expected_providers` for a wheel file: by :func:`find_smoke`'s smoke test."""
    return expected_providers(find_smoke(catalog, wheel_name), target)


@dataclass(frozen=True, kw_only=True)
class SmokeEnvironment:
    """A virtual environment of the smoke image; the check runs once in each."""

    venv: str
    requirements: tuple[str, ...] = ()  # installed with the wheel
    numpy: NumpyMajor | None = None  # the NumPy major it holds, for an onnxruntime wheel


@dataclass(frozen=True, kw_only=True)
class SmokePlan:
    """Where a wheel's check runs: its environments, the first with the full check."""

    environments: tuple[SmokeEnvironment, ...]
    skipped: tuple[NumpyMajor, ...] = ()  # NumPy majors that do not apply, with why


def plan_smoke(wheel: Path, target: Target, python: str, smoke: Smoke) -> SmokePlan:
    """One environment for a Python check; one per NumPy major that applies for onnxruntime."""
    if isinstance(smoke, PythonSmoke):
        return SmokePlan(environments=(SmokeEnvironment(venv=VENV),))
    majors = numpy_majors(python, target.arch, requires_dist(wheel))
    if not runnable(majors):
        reasons = "; ".join(major.skipped for major in majors)
        raise SmokeFailed(f"check numpy: no NumPy release can run {wheel.name}: {reasons}")
    return SmokePlan(
        environments=tuple(
            SmokeEnvironment(
                venv=f"{VENV}-numpy{major.major}", requirements=(major.requirement,), numpy=major
            )
            for major in runnable(majors)
        ),
        skipped=tuple(major for major in majors if major.skipped),
    )


def environment_tag(wheel: Path, target: Target, python: str, plan: SmokePlan) -> str:
    digest = hashlib.sha256()
    venvs = [part for env in plan.environments for part in (env.venv, *env.requirements)]
    for part in (__version__, target.base_image.pinned, python, *venvs):
        digest.update(part.encode() + b"\0")
    digest.update(hashlib.sha256(wheel.read_bytes()).digest())
    return f"farm.local/smoke-{target.name}:{digest.hexdigest()[:16]}"


def render_environment(wheel_name: str, target: Target, python: str, plan: SmokePlan) -> str:
    template = environment().get_template("smoke.Dockerfile.j2")
    return template.render(
        farm_version=__version__,
        template="smoke.Dockerfile.j2",
        wheel=wheel_name,
        target=target,
        base_image=target.base_image.pinned,
        python=python,
        environments=plan.environments,
    )


def host_device(target: Target, mode: DeviceMode) -> DeviceMode:
    """The device mode after looking at the host: "auto" resolves here or in the container.

    Off a Jetson (no L4T release file, or another architecture) the GPU cannot
    be there, so "auto" is "off"; on one it stays "auto" and the check decides
    from the device nodes the NVIDIA runtime passed in.
    """
    if mode != "auto":
        return mode
    on_jetson = JETSON_RELEASE_FILE.exists() and platform.machine() == target.arch
    return "auto" if on_jetson and target.cuda is not None else "off"


def host_details(target: Target) -> dict[str, Any]:
    """What the smoke test ran on, for its record."""
    machine = platform.machine()
    return {
        "machine": machine,
        "kernel": platform.release(),
        "emulated": machine != target.arch,
        "jetson": JETSON_RELEASE_FILE.exists(),
    }


def check_argvs(
    smoke: Smoke, plan: SmokePlan, device: DeviceMode, expect_providers: Sequence[str]
) -> list[list[str]]:
    """The check's command in each environment: the full check in the first, then the
    checks that depend on NumPy (import, session, inference) in the others."""
    return [
        check_argv(smoke, env, device, expect_providers, "full" if index == 0 else "inference")
        for index, env in enumerate(plan.environments)
    ]


def check_argv(
    smoke: Smoke,
    env: SmokeEnvironment,
    device: DeviceMode,
    expect_providers: Sequence[str],
    scope: str,
) -> list[str]:
    python = f"{env.venv}/bin/python"
    if isinstance(smoke, PythonSmoke):
        return [python, "/farm/check/python_check.py", smoke.module, "/farm/check/script.py"]
    return [
        python,
        "/farm/check/onnxruntime_check.py",
        "/farm/check/model.onnx",
        ",".join(expect_providers),
        device,
        json.dumps(MODEL_W),
        json.dumps(MODEL_B),
        env.numpy.label if env.numpy else "numpy",
        scope,
    ]


def run_smoke(
    wheel: Path,
    target: Target,
    python: str,
    smoke: Smoke,
    engine: Engine,
    *,
    expect_providers: Sequence[str],
    device: DeviceMode,
    record_dir: Path,
    on_line: Callable[[str], None],
    timeout: float = CHECK_TIMEOUT_S,
) -> SmokeReport:
    started = time.monotonic()
    device = host_device(target, device)
    plan = plan_smoke(wheel, target, python, smoke)
    tag = environment_tag(wheel, target, python, plan)
    state = "cached"
    stem = record_dir / f"smoke-{target.name}"
    with (
        host_faults(f"smoke test of {wheel.name}", record_dir),
        tempfile.TemporaryDirectory(prefix="farm-smoke-") as scratch,
    ):
        record_dir.mkdir(parents=True, exist_ok=True)
        with EngineRunner(
            engine,
            "smoke",
            on_line,
            log_path=stem.with_name(f"{stem.name}.log"),
            script_path=stem.with_name(f"{stem.name}.sh"),
        ) as runner:
            if not image_exists(engine, tag):
                _build_environment(wheel, target, python, plan, runner, tag)
                state = "built"
            _write_check_files(Path(scratch), smoke)
            options = ["-v", f"{scratch}:/farm/check:ro", *_device_args(device)]
            argvs = check_argvs(smoke, plan, device, expect_providers)
            outputs = _run_checks(runner, tag, argvs, target.platform, options, timeout)
        report = _report(wheel, target, plan, outputs, state, time.monotonic() - started)
        write_record(
            stem.with_name(f"{stem.name}.json"),
            "smoke",
            "passed" if report.passed else "failed",
            report.duration_s,
            {
                **report.to_json(),
                "wheel_sha256": sha256_file(wheel),
                # Which of the target's GPUs the wheel's CUDA libraries carry kernels for.
                "cuda_kernels": wheel_coverage(wheel, target.cuda.architectures)
                if target.cuda is not None
                else [],
                "image": tag,
                "host": host_details(target),
            },
        )
    return report


def _run_checks(
    runner: EngineRunner,
    tag: str,
    argvs: Sequence[Sequence[str]],
    platform: str,
    options: Sequence[str],
    timeout: float,
) -> list[Finished]:
    """Each check in its container, one after the other, all within ``timeout`` together."""
    deadline = time.monotonic() + timeout
    outputs = []
    try:
        for argv in argvs:
            left = max(1.0, deadline - time.monotonic())
            result = runner.container(tag, argv, platform=platform, options=options, timeout=left)
            outputs.append(result)
    except TimedOut as exc:
        raise TimedOut(
            f"the smoke stage ran past its limit of {timeout:.0f} s and was stopped", hint=exc.hint
        ) from None
    return outputs


def _device_args(device: DeviceMode) -> list[str]:
    # On a Jetson, NVIDIA's container runtime exposes the GPU and JetPack's libraries.
    return [] if device == "off" else ["--runtime", "nvidia"]


def check_definition(smoke: Smoke) -> str:
    """A digest of what the smoke test checks: the recipe's smoke test, the check scripts and
    the NumPy majors they run under. A passed result for the same bytes holds while it does."""
    digest = hashlib.sha256(smoke.model_dump_json().encode())
    package = resources.files("farm.smoke_checks")
    for name in CHECK_SCRIPTS:
        digest.update(package.joinpath(name).read_bytes())
    digest.update(repr((MAJORS, sorted(PYTHONS_OF_MAJOR.items()))).encode())
    return digest.hexdigest()


def _write_check_files(directory: Path, smoke: Smoke) -> None:
    package = resources.files("farm.smoke_checks")
    for name in CHECK_SCRIPTS:
        (directory / name).write_text(package.joinpath(name).read_text(encoding="utf-8"))
    (directory / "model.onnx").write_bytes(onnx_model())
    if isinstance(smoke, PythonSmoke):
        (directory / "script.py").write_text(smoke.script, encoding="utf-8")
    for path in directory.iterdir():
        path.chmod(0o644)
    directory.chmod(0o755)


def _build_environment(
    wheel: Path, target: Target, python: str, plan: SmokePlan, runner: EngineRunner, tag: str
) -> None:
    with tempfile.TemporaryDirectory(prefix="farm-smoke-env-") as scratch:
        context = Path(scratch)
        (context / "wheels").mkdir()
        shutil.copy2(wheel, context / "wheels" / wheel.name)
        (context / "Dockerfile").write_text(render_environment(wheel.name, target, python, plan))
        request = BuildRequest(
            dockerfile=context / "Dockerfile",
            context=context,
            platform=target.platform,
            tag=tag,
            build_args=proxy_build_args(),
            secrets=network_secrets(),
            use_registry_cache=False,
        )
        runner.build(
            request,
            image=target.base_image.pinned,
            failed=lambda result: SmokeFailed(
                f"check install: installing {wheel.name} failed: {result.failing_line()}"
            ),
        )


def _report(
    wheel: Path,
    target: Target,
    plan: SmokePlan,
    outputs: Sequence[Finished],
    state: str,
    duration: float,
) -> SmokeReport:
    results = [_check_result(out, env) for out, env in zip(outputs, plan.environments, strict=True)]
    checks = [check for result in results for check in result["checks"]]
    checks += [
        {"name": major.label, "ok": True, "skipped": True, "detail": f"not run: {major.skipped}"}
        for major in plan.skipped
    ]
    return SmokeReport(
        wheel=wheel.name,
        target=target.name,
        passed=all(check["ok"] for check in checks),
        checks=checks,
        info=_merged_info(results, plan),
        environment=state,
        duration_s=duration,
    )


def _check_result(result: Finished, env: SmokeEnvironment) -> dict[str, Any]:
    """The check's JSON line from one environment; a failed "run" check when it has none
    (the interpreter crashed: a NumPy 1 extension under NumPy 2 may end in SIGSEGV, a
    damaged library aborts at load), naming the first fatal line and the signal."""
    run = f"run {env.numpy.label}" if env.numpy else "run"
    output = result.output
    lines = [line for line in output.splitlines() if line.startswith("{")]
    data: dict[str, Any]
    try:
        data = json.loads(lines[-1])
    except (IndexError, ValueError):
        detail = crash_detail(output, result.returncode)
        data = {"checks": [{"name": run, "ok": False, "detail": detail}], "info": {}}
    data["checks"] = data.get("checks") or [{"name": run, "ok": False, "detail": "no checks ran"}]
    return data


# Lines a dying process prints that say why, most telling first: a library's own fatal
# message (libprotobuf's "[libprotobuf FATAL ...]", glog's "F1207 ..."), C++'s terminate, the
# loader's refusal, Python's fatal error, then what QEMU or the shell says of the signal.
_FATAL_LINES = (
    re.compile(r"\bFATAL\b|CHECK failed|terminate called|Fatal Python error"),
    re.compile(r"error while loading shared libraries|undefined symbol|cannot open shared object"),
    re.compile(r"uncaught target signal|Segmentation fault|Aborted|Illegal instruction"),
)


def crash_detail(output: str, returncode: int) -> str:
    """One line for a check that died without its report: the first fatal line of its
    output and the signal that ended it (a container's exit status 128+N)."""
    lines = [" ".join(line.split()) for line in output.splitlines() if line.strip()]
    fatal = next(
        (line for pattern in _FATAL_LINES for line in lines if pattern.search(line)),
        lines[-1] if lines else "no output",
    )
    if returncode > 128 and returncode - 128 in _SIGNALS:
        return f"{fatal} (ended by {_SIGNALS[returncode - 128]}, exit {returncode})"
    return f"{fatal} (exit {returncode})" if returncode else fatal


_SIGNALS = {int(sig): sig.name for sig in signal.Signals}


def _merged_info(results: Sequence[dict[str, Any]], plan: SmokePlan) -> dict[str, Any]:
    """Each environment's info, the first's (the full check) winning, and every NumPy."""
    info: dict[str, Any] = {}
    for result in reversed(results):
        info.update(result.get("info", {}))
    numpy = {
        env.numpy.series: result.get("info", {}).get("numpy", "not imported")
        for result, env in zip(results, plan.environments, strict=True)
        if env.numpy is not None
    }
    numpy.update({major.series: f"not run: {major.skipped}" for major in plan.skipped})
    if numpy:
        info["numpy"] = numpy
    return info
