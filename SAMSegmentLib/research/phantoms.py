"""Synthetic CT-like volumes with a known truth: textured soft tissue holding one lesion, or none
(plain tissue, where a box must not yield a structure)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..volume import Volume


def lesion_volume(
    radius: float,
    contrast: float,
    shape: tuple[int, int, int] = (40, 96, 96),
    noise: float = 12.0,
    seed: int = 0,
    spacing: tuple[float, float, float] = (0.8, 0.8, 2.5),
) -> tuple[Volume, np.ndarray]:
    """A slab of textured soft tissue (HU) holding one ellipsoidal lesion, flattened along k as a
    lesion in 2.5 mm slices is, and its truth mask (bool [k, j, i]). ``radius`` in pixels;
    ``contrast`` in HU, positive for enhancing, negative for hypodense, 0 for plain tissue."""
    rng = np.random.default_rng(seed)
    k, j, i = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    centre = np.array(shape) / 2
    body = ((j - centre[1]) / (shape[1] * 0.45)) ** 2 + ((i - centre[2]) / (shape[2] * 0.45)) ** 2 < 1
    lesion = ((k - centre[0]) / (radius * 0.6)) ** 2 + ((j - centre[1]) / radius) ** 2 + (
        (i - centre[2]) / radius
    ) ** 2 < 1
    array = np.full(shape, -1000.0)
    array[body] = 40.0
    array += ndimage.gaussian_filter(rng.normal(0, noise * 4, shape), 2) * body
    array[lesion] += contrast
    array += rng.normal(0, noise, shape)
    return Volume(array.astype(np.float32), spacing=spacing), lesion
