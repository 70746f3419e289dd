"""A C++ extension built with CMake (scikit-build-core)."""

from farm_demo_cmake._checksum import adler32, compiled_for

__all__ = ["adler32", "compiled_for"]
