"""Which of SAM's candidate masks answers an ambiguous prompt (one click): the rule, in one place.

For a single point SAM returns three nested candidates (a part, the object, a larger whole) and its
predicted IoU for each. On CT and MR slices the predicted IoU alone often prefers the largest, the
whole body, whose sharp air-skin edge the model finds very convincing. The rule:

1. The candidate must agree with the clicks: every positive click inside it, every negative one
   outside.
2. It must not be the body: a candidate covering at least half of the body's cross-section on the
   slice is the body or most of it, not a structure a clinician points at (organs, lesions,
   vessels and brain structures are all far smaller). The body is what the model sees: the slice as
   mapped for it, minus the dark background reached from the slice border (holes such as lungs and
   bowel gas are inside it).
3. Among the rest, the highest predicted IoU x stability score. Stability (agreement of the mask
   thresholded at logits +-1) is the second quality measure of SAM's automatic mask generator, which
   keeps masks only when both are high; a candidate that leaks into its neighbours changes with the
   threshold and loses there even when its predicted IoU is high.

A rule that finds no candidate falls back to the previous step's set, so there is always an answer.
What was tried, and the measurements, are in ``benchmarks/mobile_sam_prompts.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from segment_anything.utils.amg import calculate_stability_score

# SAM's automatic mask generator's default offset (logits thresholded at 0 -+ 1).
STABILITY_OFFSET = 1.0
# A candidate covering this fraction of the body's cross-section is taken for the body.
BODY_FRACTION_LIMIT = 0.5
# Background level on the [0, 1] slice the model sees. Both intensity mappings put air at the
# bottom: the soft-tissue CT window (L40/W400) maps everything below -160 HU to 0 (0.1 is -120 HU);
# the 0.5-99.5 percentile mapping of MR puts the background noise floor near 0. Only the skin needs
# to be brighter, as the background is grown from the slice border.
BACKGROUND_LEVEL = 0.1


@dataclass(frozen=True)
class CandidateQualities:
    """What the rule knows about each candidate (arrays of length M)."""

    predicted_iou: np.ndarray
    stability: np.ndarray
    agrees_with_clicks: np.ndarray  # bool
    body_fraction: np.ndarray  # fraction of the body's cross-section the candidate covers

    @property
    def quality(self) -> np.ndarray:
        return self.predicted_iou * self.stability


def body_mask(image01: np.ndarray, background_level: float = BACKGROUND_LEVEL) -> np.ndarray:
    """The body on a [0, 1] slice: everything but the dark background connected to the slice border,
    as its largest connected part with holes filled. Empty when the whole slice is background."""
    dark = image01 <= background_level
    labels, _count = ndimage.label(dark)
    on_border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    body = ~np.isin(labels, on_border[on_border > 0])
    labels, count = ndimage.label(body)
    if count > 1:
        sizes = ndimage.sum_labels(body, labels, index=range(1, count + 1))
        body = labels == 1 + int(np.argmax(sizes))
    return ndimage.binary_fill_holes(body)


def candidate_qualities(
    logits: torch.Tensor,
    predicted_iou: torch.Tensor,
    image01: np.ndarray,
    points_xy: np.ndarray | None,
    point_labels: np.ndarray | None,
) -> CandidateQualities:
    """Measure M candidates given as full-resolution logits (M, H, W) on the [0, 1] slice ``image01``."""
    stability = calculate_stability_score(logits.float(), 0.0, STABILITY_OFFSET).cpu().numpy()
    masks = (logits > 0).cpu().numpy()
    agrees = np.ones(len(masks), dtype=bool)
    if points_xy is not None and point_labels is not None:
        height, width = masks.shape[-2:]
        for (x, y), label in zip(points_xy, point_labels):
            row = min(height - 1, max(0, int(round(float(y)))))
            column = min(width - 1, max(0, int(round(float(x)))))
            agrees &= masks[:, row, column] == bool(label)
    body = body_mask(image01)
    if not body.any():
        body = np.ones_like(body)
    covered = (masks & body).reshape(len(masks), -1).sum(axis=1)
    return CandidateQualities(
        predicted_iou=predicted_iou.float().cpu().numpy(),
        stability=stability,
        agrees_with_clicks=agrees,
        body_fraction=covered / body.sum(),
    )


def choose_candidate(qualities: CandidateQualities) -> int:
    """Index of the candidate the rule picks (see the module docstring)."""
    keep = np.ones(len(qualities.quality), dtype=bool)
    for condition in (qualities.agrees_with_clicks, qualities.body_fraction < BODY_FRACTION_LIMIT):
        if (keep & condition).any():
            keep &= condition
    return int(np.argmax(np.where(keep, qualities.quality, -np.inf)))
