"""onnxruntime-gpu through onnxruntime's own build driver, ``tools/ci_build/build.py``.

The flags follow onnxruntime's "Build for inferencing / TensorRT" docs and the
Jetson builds of jetson-containers (``packages/ml/onnxruntime/build.sh``).
``--use_tensorrt`` implies ``--use_cuda`` in build.py; both are passed so the
command reads plainly. ``--build_shared_lib`` is left out: the C library it
adds is not part of the wheel. Parallelism is passed in as text so the Dockerfile can
carry BuildKit ``ARG`` placeholders while the plan shows real numbers.
"""

from __future__ import annotations

from typing import Any

from farm.builders.cmake_cross import SYSROOT, TOOLCHAIN_FILE, toolchain_file
from farm.jobspec import JobSpec
from farm.models import Build, OnnxruntimeBuild
from farm.resources import BuilderResources, Parallelism, plan_parallelism

VENV = "/opt/farm/venv"
SOURCE_DIR = "/src/onnxruntime"
BUILD_DIR = f"{SOURCE_DIR}/build/Linux"
PROTOC_DIR = "/opt/farm/protoc"
DEPS_DIR = "/opt/farm/deps"


def _build_settings(spec: JobSpec) -> OnnxruntimeBuild:
    return _settings(spec.recipe.build)


def _settings(build: Build) -> OnnxruntimeBuild:
    if not isinstance(build, OnnxruntimeBuild):  # pragma: no cover - the lookup guarantees it
        raise TypeError(f"the onnxruntime driver cannot build kind {build.kind!r}")
    return build


def parallelism(build: Build, resources: BuilderResources) -> Parallelism:
    settings = _settings(build)
    return plan_parallelism(
        resources,
        job_memory_gib=settings.job_memory_gib,
        nvcc_thread_memory_gib=settings.nvcc_thread_memory_gib,
        max_nvcc_threads=settings.max_nvcc_threads,
        reserve_memory_gib=settings.reserve_memory_gib,
    )


def cmake_defines(spec: JobSpec) -> dict[str, str]:
    """Target architectures first, then the recipe's own defines (which may override)."""
    defines: dict[str, str] = {}
    if spec.target.cuda is not None:
        # Plain numbers compile SASS and PTX for each arch; "-real" would drop the PTX.
        defines["CMAKE_CUDA_ARCHITECTURES"] = ";".join(spec.target.cuda.architectures)
    if spec.strategy == "cross":
        defines["CMAKE_TOOLCHAIN_FILE"] = TOOLCHAIN_FILE
        # The pybind11 module must be built against the target's Python headers.
        defines["Python_INCLUDE_DIR"] = f"{SYSROOT}/usr/include/python{spec.python}"
    defines.update(_build_settings(spec).cmake_defines)
    return defines


def _homes(spec: JobSpec) -> dict[str, str]:
    """Where CUDA, cuDNN and TensorRT are: in the target image, or for cross, nvcc on the
    build machine and the libraries inside the sysroot copied from the target image."""
    target = spec.target
    homes = {
        name: part.home
        for name, part in (
            ("cuda", target.cuda),
            ("cudnn", target.cudnn),
            ("tensorrt", target.tensorrt),
        )
        if part is not None
    }
    if spec.strategy == "cross" and target.cross is not None:
        homes = {name: f"{SYSROOT}{home}" for name, home in homes.items()}
        if target.cross_cuda_home is not None:
            homes["cuda"] = target.cross_cuda_home
        if target.cuda is not None and target.cuda.stack is not None and "cudnn" in homes:
            # An assembled stack holds cuDNN's headers and libraries in its target tree.
            homes["cudnn"] = f"{target.cross_cuda_home}/{target.cuda_target_dir}"
    return homes


def build_argv(spec: JobSpec, *, jobs: str, nvcc_threads: str) -> list[str]:
    """The exact argument list: interpreter, script, then build.py's own options."""
    build = _build_settings(spec)
    target = spec.target
    argv = [
        f"{VENV}/bin/python",
        "tools/ci_build/build.py",
        "--build_dir",
        BUILD_DIR,
        "--config",
        build.config,
        "--update",
        "--build",
        "--build_wheel",
        "--skip_tests",
        "--skip_submodule_sync",
        "--allow_running_as_root",
        "--compile_no_warning_as_error",
        "--cmake_generator",
        "Ninja",
        # ccache through CMake's compiler launcher; its directory is a BuildKit cache mount.
        "--use_cache",
        "--parallel",
        jobs,
    ]
    if target.cuda is None:
        # setup.py names the distribution onnxruntime-<suffix>. With --use_cuda, build.py
        # passes --wheel_name_suffix=gpu itself (build_python_wheel in tools/ci_build/build.py);
        # a second one makes setup.py fail ("option --wheel_name_suffix not recognized").
        argv += ["--wheel_name_suffix", "gpu"]
    homes = _homes(spec)
    if target.cuda is not None:
        argv += ["--use_cuda", "--cuda_home", homes["cuda"], "--nvcc_threads", nvcc_threads]
    if target.cudnn is not None:
        argv += ["--cudnn_home", homes["cudnn"]]
    if target.tensorrt is not None:
        argv += ["--use_tensorrt", "--tensorrt_home", homes["tensorrt"]]
    if spec.strategy == "cross":
        argv += ["--path_to_protoc_exe", build.protoc or f"{PROTOC_DIR}/bin/protoc"]
    argv += list(build.extra_args)
    defines = cmake_defines(spec)
    if defines:
        argv += ["--cmake_extra_defines", *(f"{key}={value}" for key, value in defines.items())]
    return argv


def template_context(spec: JobSpec) -> dict[str, Any]:
    build = _build_settings(spec)
    context: dict[str, Any] = {
        "venv": VENV,
        "source_dir": SOURCE_DIR,
        "wheel_glob": f"{BUILD_DIR}/{build.config}/dist/*.whl",
        "ninja_log": f"{BUILD_DIR}/{build.config}/.ninja_log",
        "system_packages": list(build.system_packages),
        "python_requirements": [f"cmake{build.cmake}", *build.python_requirements],
        "deps": bool(build.deps or build.dep_files),
        "deps_dir": DEPS_DIR,
    }
    if spec.strategy == "cross":
        context.update(
            sysroot=SYSROOT,
            toolchain_path=TOOLCHAIN_FILE,
            toolchain_lines=toolchain_file(spec.target).splitlines(),
            protoc_dir=PROTOC_DIR,
            protoc=build.protoc,
            sysroot_packages=list(build.sysroot_packages),
        )
    return context
