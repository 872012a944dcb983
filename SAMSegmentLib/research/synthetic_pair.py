"""A moving image made from a fixed one by a known rigid motion and a change of modality, to
check a registration against the truth on the user's own data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..volume import Volume
from .sitk_images import image_on_grid


@dataclass
class SyntheticPair:
    moving: Volume
    moving_mask: np.ndarray  # bool [k, j, i] on the moving grid
    truth: sitk.Transform  # the registration answer: fixed physical point -> moving physical point


def synthetic_pair(
    fixed: Volume,
    fixed_mask: np.ndarray,
    rotation_deg: tuple[float, float, float],
    translation_mm: tuple[float, float, float],
    intensity: Callable[[np.ndarray], np.ndarray],
    background: float | None = None,
) -> SyntheticPair:
    """Move the fixed image's content by a rotation (about x, y, z, around the image centre) and
    a translation, on the fixed grid, then map its intensities through ``intensity``."""
    motion = sitk.Euler3DTransform()
    centre_ijk = (np.array(fixed.shape_ijk) - 1) / 2.0
    motion.SetCenter(tuple(fixed.ijk_to_physical(centre_ijk)))
    motion.SetRotation(*np.radians(rotation_deg))
    motion.SetTranslation(tuple(float(t) for t in translation_mm))
    # Resampling through the inverse moves content at q to motion(q): the registration answer is ``motion``.
    inverse = motion.GetInverse()
    image = image_on_grid(fixed.array.astype(np.float32), fixed)
    fill = float(fixed.array.min()) if background is None else background
    moved = sitk.GetArrayFromImage(sitk.Resample(image, image, inverse, sitk.sitkLinear, fill))
    mask_image = image_on_grid(np.asarray(fixed_mask, dtype=np.uint8), fixed)
    moved_mask = sitk.GetArrayFromImage(sitk.Resample(mask_image, image, inverse, sitk.sitkNearestNeighbor, 0)) > 0
    moving = Volume(
        intensity(moved).astype(np.float32), fixed.spacing, fixed.origin, fixed.direction, modality="synthetic"
    )
    return SyntheticPair(moving, moved_mask, motion)
