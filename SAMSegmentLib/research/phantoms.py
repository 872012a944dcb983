"""Synthetic CT-like volumes with a known truth: textured soft tissue holding one lesion, or none
(plain tissue, where a box must not yield a structure), or a vessel whose contrast drifts along it."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..volume import Volume


def _tissue(shape: tuple[int, int, int], noise: float, rng: np.random.Generator) -> np.ndarray:
    """Textured soft tissue (HU) in an elliptic body surrounded by air, before the noise."""
    _, j, i = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    centre = np.array(shape) / 2
    body = ((j - centre[1]) / (shape[1] * 0.45)) ** 2 + ((i - centre[2]) / (shape[2] * 0.45)) ** 2 < 1
    array = np.full(shape, -1000.0)
    array[body] = 40.0
    return array + ndimage.gaussian_filter(rng.normal(0, noise * 4, shape), 2) * body


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
    lesion = ((k - centre[0]) / (radius * 0.6)) ** 2 + ((j - centre[1]) / radius) ** 2 + (
        (i - centre[2]) / radius
    ) ** 2 < 1
    array = _tissue(shape, noise, rng)
    array[lesion] += contrast
    array += rng.normal(0, noise, shape)
    return Volume(array.astype(np.float32), spacing=spacing), lesion


def drifting_vessel_volume(
    radius: float,
    contrast: float,
    drift: float,
    shape: tuple[int, int, int] = (40, 96, 96),
    ends: tuple[int, int] = (4, 35),
    noise: float = 12.0,
    seed: int = 0,
    spacing: tuple[float, float, float] = (0.8, 0.8, 3.0),
) -> tuple[Volume, np.ndarray]:
    """Textured soft tissue crossed along k by an enhancing vessel from slice ``ends[0]`` to
    ``ends[1]``, and its truth mask (bool [k, j, i]). The vessel is widest (``radius`` pixels) at its
    middle, 15 % narrower at its ends, and its ``contrast`` (HU) changes linearly by ``drift`` HU from
    one end to the other (contrast thinning along a vessel)."""
    rng = np.random.default_rng(seed)
    k, j, i = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    first, last = ends
    along = np.clip((k - first) / max(last - first, 1), 0.0, 1.0)  # 0 at the first slice, 1 at the last
    local_radius = radius * (1.0 - 0.6 * (along - 0.5) ** 2)
    centre = np.array(shape) / 2
    vessel = ((j - centre[1]) ** 2 + (i - centre[2]) ** 2 < local_radius**2) & (k >= first) & (k <= last)
    array = _tissue(shape, noise, rng)
    array[vessel] += (contrast + drift * (along - 0.5))[vessel]
    array += rng.normal(0, noise, shape)
    return Volume(array.astype(np.float32), spacing=spacing), vessel
