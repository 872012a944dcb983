"""Which propagation algorithm serves which model family."""

from __future__ import annotations

from ..errors import ModelUnavailableError
from ..predictor import VolumePredictor
from ..propagation import CancelToken, MaskCarryPropagation, PropagationRequest, StopRule
from ..propagation.sam2 import SAM2StopRule, SAM2VolumeSession
from ..propagation.types import ProgressCallback, Propagator
from ..registry import Family

# Models without memory carry each slice's mask to the next as its prompt.
_MASK_CARRY_FAMILIES = frozenset({Family.SAM, Family.HQ_SAM, Family.LITE_MEDSAM, Family.MOBILE_SAM})


def make_propagator(
    segmenter: VolumePredictor | SAM2VolumeSession,
    request: PropagationRequest,
    stop_rule: StopRule | SAM2StopRule | None,
    cancel: CancelToken,
    progress: ProgressCallback,
) -> Propagator:
    """The propagator for the segmenter's model family; the one place to add a family.

    SAM 2 family models propagate in their session, which keeps what they remember of earlier
    prompts and propagations; it adds the request's prompts on the seed slice right away.
    """
    if isinstance(segmenter, SAM2VolumeSession):
        _check_stop_rule(stop_rule, SAM2StopRule, segmenter.spec.family)
        return segmenter.propagate_request(request, stop_rule, cancel, progress)
    family = segmenter.model.spec.family
    if family in _MASK_CARRY_FAMILIES:
        _check_stop_rule(stop_rule, StopRule, family)
        return MaskCarryPropagation(segmenter, request, stop_rule=stop_rule, cancel=cancel, progress=progress)
    raise ModelUnavailableError(f"Propagation with {family.value} models is not available in this version.")


def _check_stop_rule(stop_rule: object, expected: type, family: Family) -> None:
    if stop_rule is not None and not isinstance(stop_rule, expected):
        raise TypeError(f"{family.value} models stop propagating by a {expected.__name__}, "
                        f"not a {type(stop_rule).__name__}.")
