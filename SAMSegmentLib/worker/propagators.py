"""Which propagation algorithm serves which model family."""

from __future__ import annotations

from ..errors import ModelUnavailableError
from ..predictor import VolumePredictor
from ..propagation import CancelToken, MaskCarryPropagation, PropagationRequest, StopRule
from ..propagation.types import ProgressCallback, Propagator
from ..registry import Family

# Models without memory carry each slice's mask to the next as its prompt.
_MASK_CARRY_FAMILIES = frozenset({Family.SAM, Family.HQ_SAM, Family.LITE_MEDSAM})


def make_propagator(
    predictor: VolumePredictor,
    request: PropagationRequest,
    stop_rule: StopRule | None,
    cancel: CancelToken,
    progress: ProgressCallback,
) -> Propagator:
    """The propagator for the predictor's model family; the one place to add a family."""
    family = predictor.model.spec.family
    if family in _MASK_CARRY_FAMILIES:
        return MaskCarryPropagation(predictor, request, stop_rule=stop_rule, cancel=cancel, progress=progress)
    raise ModelUnavailableError(f"Propagation with {family.value} models is not available in this version.")
