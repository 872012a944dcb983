"""Which model to open, as plain values: picklable, so a worker process can open it itself."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .models.base import PromptableModel


@dataclass(frozen=True)
class ModelChoice:
    name: str = "litemedsam"
    checkpoint: Path | None = None  # instead of the cached checkpoint
    device: str = "auto"
    backend: str = "auto"

    def open(self) -> PromptableModel:
        """Load the model on its device and backend (SAM 2 models segment through their own sessions)."""
        from .backends import open_backend
        from .device import select_device
        from .errors import ModelUnavailableError
        from .models import load_model
        from .registry import Family, get_spec

        spec = get_spec(self.name)
        if spec.family is Family.SAM2:
            raise ModelUnavailableError(f"{spec.name} is a SAM 2 model: use it with `samsegment segment` or in Slicer.")
        return open_backend(load_model(spec, select_device(self.device), checkpoint=self.checkpoint), self.backend)
