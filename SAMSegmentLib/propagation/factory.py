"""Which propagation algorithm serves which model family: the one place to add a family."""

from __future__ import annotations

from typing import TypeVar

from ..errors import ModelUnavailableError
from ..predictor import VolumePredictor
from ..registry import Family
from .mask_carry import MaskCarryPropagation
from .sam2 import SAM2StopRule, SAM2VolumeSession
from .stop_rule import StopRule
from .types import CancelToken, Progress, PropagationRequest, Propagator

# Models without memory carry each slice's mask to the next as its prompt.
_MASK_CARRY_FAMILIES = frozenset({Family.SAM, Family.HQ_SAM, Family.LITE_MEDSAM, Family.MOBILE_SAM})

Rule = TypeVar("Rule", StopRule, SAM2StopRule)


def make_propagator(
    segmenter: VolumePredictor | SAM2VolumeSession,
    request: PropagationRequest,
    stop_rule: StopRule | SAM2StopRule | None,
    cancel: CancelToken,
    progress: Progress | None = None,
) -> Propagator:
    """The propagator for the segmenter's model family; the one place to add a family.

    SAM 2 family models propagate in their session, which keeps what they remember of earlier
    prompts and propagations; it adds the request's prompts on the seed slice right away.
    """
    if isinstance(segmenter, SAM2VolumeSession):
        sam2_rule = _checked_stop_rule(stop_rule, SAM2StopRule, segmenter.spec.family)
        return segmenter.propagate_request(request, sam2_rule, cancel, progress)
    family = segmenter.model.spec.family
    if family in _MASK_CARRY_FAMILIES:
        rule = _checked_stop_rule(stop_rule, StopRule, family)
        return MaskCarryPropagation(segmenter, request, stop_rule=rule, cancel=cancel, progress=progress)
    raise ModelUnavailableError(f"Propagation with {family.value} models is not available in this version.")


def _checked_stop_rule(stop_rule: object, expected: type[Rule], family: Family) -> Rule | None:
    if stop_rule is None or isinstance(stop_rule, expected):
        return stop_rule
    raise TypeError(
        f"{family.value} models stop propagating by a {expected.__name__}, not a {type(stop_rule).__name__}."
    )
