"""Which earlier slices SAM 2 family models remember: plain data, importable without torch (it
crosses the engine's process boundary in SetVolume)."""

from __future__ import annotations

from enum import Enum


class MemoryPolicy(str, Enum):
    RECENT = "recent"  # SAM 2's default: the most recent slices
    SELF_SORTING = "self-sorting"  # MedSAM-2's self-sorting memory bank
