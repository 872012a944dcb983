"""Propagate one slice's prompts through the volume, for every model family.

The request and result types import without torch (the engine's protocol carries them to a
Slicer process that has none loaded); ``MaskCarryPropagation`` loads torch and the models when
first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .stop_rule import StopRule
from .types import (
    CancelToken,
    Direction,
    ObjectPrompts,
    ObjectResult,
    PropagationRequest,
    PropagationResult,
    SliceResult,
    Stop,
)

if TYPE_CHECKING:
    from .mask_carry import MaskCarryPropagation

_LAZY = {"MaskCarryPropagation": ".mask_carry"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CancelToken",
    "Direction",
    "MaskCarryPropagation",
    "ObjectPrompts",
    "ObjectResult",
    "PropagationRequest",
    "PropagationResult",
    "SliceResult",
    "Stop",
    "StopRule",
]
