"""SAM 2 family propagation (SAM 2.1, MedSAM2) with the upstream ``sam2`` package's video predictor.

Importing this package does not need ``sam2``; building a model does, and raises
``ModelUnavailableError`` with install instructions when it is missing.

``MemoryPolicy`` and ``SAM2StopRule`` import without torch (they cross the engine's process
boundary); everything else loads torch when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .policy import MemoryPolicy
from .stop_rule import SAM2StopRule

if TYPE_CHECKING:
    from .loading import build_sam2_predictor, load_sam2_predictor, open_sam2_session
    from .memory_bank import SelfSortingMemoryBank, SelfSortingSettings
    from .propagation import SAM2Propagation
    from .session import SAM2VolumeSession

_LAZY = {
    "build_sam2_predictor": ".loading",
    "load_sam2_predictor": ".loading",
    "open_sam2_session": ".loading",
    "SelfSortingMemoryBank": ".memory_bank",
    "SelfSortingSettings": ".memory_bank",
    "SAM2Propagation": ".propagation",
    "SAM2VolumeSession": ".session",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MemoryPolicy",
    "SAM2Propagation",
    "SAM2StopRule",
    "SAM2VolumeSession",
    "SelfSortingMemoryBank",
    "SelfSortingSettings",
    "build_sam2_predictor",
    "load_sam2_predictor",
    "open_sam2_session",
]
