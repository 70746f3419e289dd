"""A CUDA kernel (saxpy) and host functions, built for the target's SM architectures."""

from farm_demo_cuda._saxpy import arch_list, device_status, saxpy

__all__ = ["arch_list", "device_status", "saxpy"]
