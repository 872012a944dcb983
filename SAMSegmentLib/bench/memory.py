"""Process memory: the peak the operating system saw, and what the big pieces weigh."""

from __future__ import annotations

import sys

import torch

MB = 1024 * 1024


def peak_rss_mb() -> float:
    """Largest resident set of this process so far (``getrusage``; Unix only)."""
    import resource  # not on Windows

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return round(peak / MB if sys.platform == "darwin" else peak / 1024, 1)


def module_mb(module: torch.nn.Module) -> float:
    """Parameters and buffers of a network."""
    tensors = [*module.parameters(), *module.buffers()]
    return round(sum(t.element_size() * t.nelement() for t in tensors) / MB, 1)


def gpu_peak_mb(device: torch.device) -> float | None:
    """Most GPU memory torch's allocator held (ONNX Runtime's own CUDA arena is not included)."""
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / MB, 1)
