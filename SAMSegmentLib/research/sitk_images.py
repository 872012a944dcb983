"""Engine volumes and arrays as SimpleITK images on the same physical grid, and back."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..volume import Volume


def image_on_grid(array: np.ndarray, volume: Volume, is_vector: bool = False) -> sitk.Image:
    """``array`` ([k, j, i], or [k, j, i, c] for a vector image) with ``volume``'s spacing, origin and
    direction, so that it overlays the volume exactly."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array), isVector=is_vector)
    image.SetSpacing(volume.spacing)
    image.SetOrigin(volume.origin)
    image.SetDirection(tuple(np.asarray(volume.direction, dtype=float).reshape(-1)))
    return image


def volume_image(volume: Volume) -> sitk.Image:
    """The volume's voxels as a float32 SimpleITK image."""
    return image_on_grid(volume.array.astype(np.float32), volume)
