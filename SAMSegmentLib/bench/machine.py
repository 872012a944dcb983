"""Which machine and software a benchmark ran on, so records from different runs can be compared."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from ..backends import onnxruntime_available


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def memory_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows) or no such name
        return None


def describe_machine(device: torch.device) -> dict[str, object]:
    info: dict[str, object] = {
        "cpu": cpu_name(),
        "logical_cores": os.cpu_count(),
        "memory_gb": memory_gb(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    if onnxruntime_available():
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
        info["onnxruntime_providers"] = onnxruntime.get_available_providers()
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load: other programs competing for the cores skew every timing."""
    return [round(value, 2) for value in os.getloadavg()] if hasattr(os, "getloadavg") else None
