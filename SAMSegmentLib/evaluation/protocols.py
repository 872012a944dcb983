"""Prompts derived from a reference mask, as in "Segment Anything Model for Medical Image Analysis:
an Experimental Study": the slice where the structure is largest, and the box around it there."""

from __future__ import annotations

import numpy as np

from ..prompts import Prompts
from ..volume import Axis


def largest_slice(reference: np.ndarray, axis: Axis) -> int:
    """Index of the slice along ``axis`` where the reference has the most voxels."""
    other_axes = tuple(a for a in range(3) if a != axis.array_axis)
    return int(np.argmax(reference.sum(axis=other_axes)))


def box_from_reference(reference_slice: np.ndarray) -> Prompts:
    """The tight box around the reference on one slice (inclusive pixel corners)."""
    ys, xs = np.nonzero(reference_slice)
    return Prompts(box=(float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())))
