"""Process memory: the peak the operating system saw, and what the big pieces weigh."""

from __future__ import annotations

import torch

from ..memory_use import MB, peak_rss_mb  # noqa: F401 - the benchmarks' memory figures in one module


def module_mb(module: torch.nn.Module) -> float:
    """Parameters and buffers of a network."""
    tensors = [*module.parameters(), *module.buffers()]
    return round(sum(t.element_size() * t.nelement() for t in tensors) / MB, 1)


def gpu_peak_mb(device: torch.device) -> float | None:
    """Most GPU memory torch's allocator held (ONNX Runtime's own CUDA arena is not included)."""
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / MB, 1)
