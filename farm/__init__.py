"""farm: a cross-architecture wheel build farm for NVIDIA Jetson."""

__version__ = "0.1.0"
