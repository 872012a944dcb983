"""When has the object ended along one direction of a SAM 2 propagation?"""

from __future__ import annotations

from dataclasses import dataclass

from ..stop_rule import StopRule


@dataclass(frozen=True)
class SAM2StopRule:
    """Stop a direction at the first slice where SAM 2 says the object is not there.

    SAM 2 predicts, besides the mask, an object score logit: above 0 it sees the object on
    the slice, at or below 0 it outputs an empty mask and remembers "no object". A slice is
    refused (and the direction stops) when that logit is at most ``min_object_score``, when
    the mask is empty, or when its area falls below ``min_area_fraction`` of the area on the
    slice the direction started from (the object is petering out into noise).
    """

    min_object_score: float = 0.0
    min_area_fraction: float = StopRule.min_area_fraction  # one home: the calibrated mask-carrying rule

    def check(self, object_score: float, area: int, start_area: int | None) -> str:
        """The reason to stop before this slice, or "" to accept it. ``start_area`` is the
        area on the direction's first slice, None while checking that slice itself."""
        if object_score <= self.min_object_score:
            return f"object ended: SAM 2 sees no object (object score {object_score:.2f})"
        if area == 0:
            return "object ended: empty mask"
        if start_area and area < self.min_area_fraction * start_area:
            return f"object ended: area collapsed to {area / start_area:.1%} of the starting slice"
        return ""
