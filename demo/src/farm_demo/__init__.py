"""Round-trips bytes through the system libzstd (the farm's demo package)."""

from farm_demo._zstd import compress, decompress, zstd_version

__all__ = ["compress", "decompress", "zstd_version"]
