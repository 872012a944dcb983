"""Choose the torch device: CUDA, then Apple MPS, then CPU, unless the user says otherwise."""

from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")


def select_device(requested: str = "auto") -> torch.device:
    requested = (requested or "auto").lower()
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("CUDA was requested but no CUDA GPU is usable by this PyTorch; choose 'cpu' or 'auto'.")
    if requested == "mps" and not torch.backends.mps.is_available():
        raise ValueError("Apple MPS was requested but is not available here; choose 'cpu' or 'auto'.")
    if requested.split(":")[0] not in DEVICE_CHOICES:
        raise ValueError(f"Unknown device '{requested}'. Choose one of: {', '.join(DEVICE_CHOICES)}.")
    return torch.device(requested)
