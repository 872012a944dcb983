"""Wall-clock timing that waits for the GPU, and the summaries the report uses."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(call: Callable[[], T], device: torch.device) -> tuple[float, T]:
    """(seconds, result) of ``call``, including the GPU work it queued."""
    synchronize(device)
    started = time.perf_counter()
    result = call()
    synchronize(device)
    return time.perf_counter() - started, result


def milliseconds(seconds: Sequence[float], percentile: float = 50.0) -> float:
    return round(float(np.percentile(np.asarray(seconds, dtype=float), percentile)) * 1000.0, 1)
