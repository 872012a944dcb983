"""Propagate one slice's prompts through the volume, for every model family."""

from .mask_carry import MaskCarryPropagation
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
