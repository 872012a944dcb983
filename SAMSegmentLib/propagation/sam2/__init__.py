"""SAM 2 family propagation (SAM 2.1, MedSAM2) with the upstream ``sam2`` package's video predictor.

Importing this package does not need ``sam2``; building a model does, and raises
``ModelUnavailableError`` with install instructions when it is missing.
"""

from .loading import build_sam2_predictor, load_sam2_predictor, open_sam2_session
from .memory_bank import MemoryPolicy, SelfSortingMemoryBank, SelfSortingSettings
from .propagation import SAM2Propagation
from .session import SAM2VolumeSession
from .stop_rule import SAM2StopRule

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
