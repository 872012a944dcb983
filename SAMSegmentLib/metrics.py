"""Overlap and boundary metrics between binary masks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

# The tolerance of the normalized surface distance, in mm: the value the CVPR 2024 "MedSAM on a
# Laptop" and CVPR 2025 interactive 3D segmentation challenges score with (``tolerance=2.0`` with
# ``spacing_mm`` in CVPR25_iter_eval.py of github.com/JunMa11/CVPR-MedSegFMCompetition).
NSD_TOLERANCE_MM = 2.0


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


def normalized_surface_distance(
    prediction: np.ndarray,
    reference: np.ndarray,
    spacing: Sequence[float],
    tolerance_mm: float = NSD_TOLERANCE_MM,
) -> float:
    """The normalized surface distance (surface Dice, Nikolov et al. 2018): the share of both
    surfaces that lies within ``tolerance_mm`` of the other surface.

    ``spacing`` is the voxel size in mm in the arrays' axis order. A surface is made of the mask's
    voxels with a face-neighbour outside the mask (outside the array counts as outside); each is
    weighted by the area of its exposed faces, so anisotropic voxels count by their real surface.
    Distances are measured between voxel centres. Two empty masks agree perfectly; one empty mask
    scores 0.
    """
    prediction, reference = prediction.astype(bool), reference.astype(bool)
    if prediction.shape != reference.shape or len(spacing) != prediction.ndim:
        raise ValueError(
            f"Masks of shapes {prediction.shape} and {reference.shape} with spacing {tuple(spacing)} do not match."
        )
    if not prediction.any() and not reference.any():
        return 1.0
    if not prediction.any() or not reference.any():
        return 0.0
    # Every surface voxel lies in the union's bounding box: distances are exact inside it.
    region = tuple(slice(max(lo - 1, 0), hi + 2) for lo, hi in zip(*_bounds(prediction | reference)))
    prediction, reference = prediction[region], reference[region]
    prediction_area = _surface_area(prediction, spacing)
    reference_area = _surface_area(reference, spacing)
    prediction_surface, reference_surface = prediction_area > 0, reference_area > 0
    to_reference = ndimage.distance_transform_edt(~reference_surface, sampling=spacing)
    to_prediction = ndimage.distance_transform_edt(~prediction_surface, sampling=spacing)
    close = (prediction_area * (to_reference <= tolerance_mm)).sum() + (
        reference_area * (to_prediction <= tolerance_mm)
    ).sum()
    return float(close / (prediction_area.sum() + reference_area.sum()))


def _bounds(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    indices = np.argwhere(mask)
    return indices.min(axis=0), indices.max(axis=0)


def _surface_area(mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Per voxel, the area in mm² of its faces that separate the mask from the outside."""
    padded = np.pad(mask, 1)
    inner = tuple(slice(1, -1) for _ in range(mask.ndim))
    area = np.zeros(mask.shape)
    for axis in range(mask.ndim):
        face = float(np.prod([s for a, s in enumerate(spacing) if a != axis]))
        for step in (1, -1):
            neighbour_outside = ~np.roll(padded, step, axis=axis)[inner]
            area += face * (mask & neighbour_outside)
    return area
