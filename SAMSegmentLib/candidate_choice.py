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


def stability_score(logits: np.ndarray, offset: float = STABILITY_OFFSET) -> np.ndarray:
    """SAM's stability score of each mask (M, H, W) given as logits: the IoU of the masks thresholded
    at +offset and -offset, i.e. their area ratio, as the former lies inside the latter. In numpy:
    on the CPU it is some 70 times faster than summing torch's boolean tensors."""
    flat = logits.reshape(len(logits), -1)
    return np.count_nonzero(flat > offset, axis=1) / np.maximum(1, np.count_nonzero(flat > -offset, axis=1))


def body_mask(image01: np.ndarray, background_level: float = BACKGROUND_LEVEL) -> np.ndarray:
    """The body on a [0, 1] slice: everything but the dark background connected to the slice border,
    its largest connected part. Empty when the whole slice is background."""
    labels, count = ndimage.label(image01 <= background_level)
    outside = np.zeros(count + 1, dtype=bool)
    outside[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = True
    outside[0] = False  # label 0: the brighter pixels
    # Dark regions inside the body (lungs, bowel gas) are not reached from the border: they stay in.
    body = ~outside[labels]
    labels, count = ndimage.label(body)
    if count > 1:  # bright specks outside the body: the scanner table, a field-of-view ring
        sizes = np.bincount(labels.ravel())[1:]
        body = labels == 1 + int(np.argmax(sizes))
    return body


def candidate_qualities(
    logits: torch.Tensor,
    predicted_iou: torch.Tensor,
    image01: np.ndarray,
    points_xy: np.ndarray | None,
    point_labels: np.ndarray | None,
) -> CandidateQualities:
    """Measure M candidates given as full-resolution logits (M, H, W) on the [0, 1] slice ``image01``."""
    values = logits.float().cpu().numpy()
    masks = values > 0
    stability = stability_score(values)
    agrees = np.ones(len(masks), dtype=bool)
    if points_xy is not None and point_labels is not None:
        height, width = masks.shape[-2:]
        for (x, y), label in zip(points_xy, point_labels):
            row = min(height - 1, max(0, round(float(y))))
            column = min(width - 1, max(0, round(float(x))))
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
