"""Overlap metrics between binary masks."""

from __future__ import annotations

import numpy as np


def dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Dice coefficient; two empty masks agree perfectly."""
    prediction, reference = prediction.astype(bool), reference.astype(bool)
    total = int(prediction.sum()) + int(reference.sum())
    return 1.0 if total == 0 else 2.0 * int((prediction & reference).sum()) / total


def iou(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Intersection over union; two empty masks agree perfectly."""
    prediction, reference = prediction.astype(bool), reference.astype(bool)
    union = int((prediction | reference).sum())
    return 1.0 if union == 0 else int((prediction & reference).sum()) / union
