"""A CMake toolchain file for the cross strategy, made from the target's cross section.

It follows CMake's cmake-toolchains(7) manual: the target system and processor,
the cross compilers, the sysroot, and find rules that take libraries and
headers from the sysroot but programs from the build machine. For CUDA, nvcc
of the build platform's toolkit compiles device code for the target, with
the cross g++ as its host compiler (``CMAKE_CUDA_HOST_COMPILER``, nvcc's
``-ccbin``), and links against the toolkit's ``targets/<arch>-linux``
libraries, as NVIDIA's cuda-cross-aarch64 packages lay them out.
"""

from __future__ import annotations

from farm.models import Target

SYSROOT = "/opt/farm/sysroot"
TOOLCHAIN_FILE = "/opt/farm/toolchain.cmake"


def toolchain_file(target: Target, sysroot: str = SYSROOT) -> str:
    cross = target.cross
    if cross is None:
        raise ValueError(f"target {target.name} has no cross section")
    processor = target.arch
    lines = [
        f"# CMake toolchain for {target.name}: {cross.triplet} on {cross.build_platform}.",
        "# Written by farm from the target's cross section; see cmake-toolchains(7).",
        "set(CMAKE_SYSTEM_NAME Linux)",
        f"set(CMAKE_SYSTEM_PROCESSOR {processor})",
        f"set(CMAKE_SYSROOT {sysroot})",
        f"set(CMAKE_C_COMPILER {cross.cc})",
        f"set(CMAKE_CXX_COMPILER {cross.cxx})",
        f"set(CMAKE_LIBRARY_ARCHITECTURE {cross.triplet})",
        "set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)",
        # pkg-config (FindPkgConfig) reads the target's .pc files and prefixes their paths.
        f"set(ENV{{PKG_CONFIG_SYSROOT_DIR}} {sysroot})",
        f"set(ENV{{PKG_CONFIG_LIBDIR}} {sysroot}/usr/lib/{cross.triplet}/pkgconfig:"
        f"{sysroot}/usr/lib/pkgconfig:{sysroot}/usr/share/pkgconfig)",
    ]
    cuda_home = target.cross_cuda_home
    if cuda_home is not None and target.cuda is not None:
        cuda_target = f"{cuda_home}/{target.cuda_target_dir}"
        lines += [
            f"set(CMAKE_CUDA_COMPILER {cuda_home}/bin/nvcc)",
            f"set(CMAKE_CUDA_HOST_COMPILER {cross.cxx})",
            # The target's SM architectures, unless a project sets its own.
            "if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)",
            f'  set(CMAKE_CUDA_ARCHITECTURES "{";".join(target.cuda.architectures)}")',
            "endif()",
            f"set(CUDAToolkit_ROOT {cuda_home})",
            f"set(CUDAToolkit_TARGET_DIR {cuda_target})",
            f"list(APPEND CMAKE_FIND_ROOT_PATH {cuda_target})",
            # nvcc's host compiler preprocesses with the same sysroot as the C++ compiler, so
            # the target's headers are its system headers (CMake passes no sysroot to nvcc).
            f'set(CMAKE_CUDA_FLAGS_INIT "-ccbin {cross.cxx} -Xcompiler=--sysroot={sysroot}")',
        ]
    return "\n".join(lines) + "\n"
