"""Prompts derived from a reference mask.

The one-box protocol prompts the slice where the structure is largest, as in "Segment Anything
Model for Medical Image Analysis: an Experimental Study". The CVPR 2025 interactive 3D
segmentation challenge gives a box on the slice of the structure's middle voxel together with the
first and last slice of the structure (get_boxes.py in github.com/JunMa11/CVPR-MedSegFMCompetition,
which also widens the box by a random 0-5 pixels; here the box is tight, so runs are repeatable).
"""

from __future__ import annotations

import numpy as np

from ..prompts import Prompts
from ..volume import Axis


def slice_counts(reference: np.ndarray, axis: Axis) -> np.ndarray:
    """How many reference voxels each slice along ``axis`` holds."""
    other_axes = tuple(a for a in range(3) if a != axis.array_axis)
    return reference.sum(axis=other_axes)


def largest_slice(reference: np.ndarray, axis: Axis) -> int:
    """Index of the slice along ``axis`` where the reference has the most voxels."""
    return int(np.argmax(slice_counts(reference, axis)))


def middle_slice(reference: np.ndarray, axis: Axis) -> int:
    """Index of the slice along ``axis`` holding the reference's middle voxel in slice order."""
    cumulative = np.cumsum(slice_counts(reference, axis))
    return int(np.searchsorted(cumulative, cumulative[-1] // 2, side="right"))


def reference_extent(reference: np.ndarray, axis: Axis) -> tuple[int, int]:
    """First and last slice along ``axis`` that hold the reference."""
    present = np.nonzero(slice_counts(reference, axis))[0]
    return int(present.min()), int(present.max())


def box_from_reference(reference_slice: np.ndarray) -> Prompts:
    """The tight box around the reference on one slice (inclusive pixel corners)."""
    ys, xs = np.nonzero(reference_slice)
    return Prompts(box=(float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())))
