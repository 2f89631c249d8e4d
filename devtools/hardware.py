"""What a measurement ran on, for benchmark and check reports: the CPU model and the GPU.

``platform.processor()`` is empty on most Linux machines, so the CPU model is read from
/proc/cpuinfo ("model name", or "Hardware"/"CPU part" lines on some ARM kernels), with
``platform.processor()`` and then the architecture as fallbacks.
"""
from __future__ import annotations

import os
import platform


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """E.g. 'AMD EPYC 7B13' or 'Intel(R) Xeon(R) CPU @ 2.20GHz'; never empty."""
    try:
        with open(cpuinfo, errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware") and value.strip():
                    return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def gpu_name(device: object = None) -> str | None:
    """The CUDA device's name, or None without one."""
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(device)


def describe(gpu: bool, threads: int | None = None) -> str:
    """One phrase for a report header: 'NVIDIA H100 80GB HBM3, host CPU AMD EPYC 7B13 (16
    cores)' when a GPU is used (``gpu``) and present, else 'CPU AMD EPYC 7B13 (2 cores)';
    ``threads``: torch's thread count, added as ', N torch threads' inside the brackets."""
    cores = f"{os.cpu_count() or 1} cores" + (f", {threads} torch threads" if threads else "")
    host = f"{cpu_model()} ({cores})"
    name = gpu_name() if gpu else None
    return f"{name}, host CPU {host}" if name else f"CPU {host}"
