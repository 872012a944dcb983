"""Synthetic volumes with a known truth: CT-like textured soft tissue holding one lesion, or none
(plain tissue, where a box must not yield a structure), or a vessel whose contrast drifts along it;
an MR-like one holding a small lesion under a brighter rim of fat."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..volume import Volume


def _body_radius(shape: tuple[int, int, int]) -> np.ndarray:
    """[k, j, i]: each voxel's in-plane distance from the centre relative to the elliptic body's
    outline (1 on it), the body filling 90 % of each side."""
    _, j, i = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    centre = np.array(shape) / 2
    return ((j - centre[1]) / (shape[1] * 0.45)) ** 2 + ((i - centre[2]) / (shape[2] * 0.45)) ** 2


def _tissue(shape: tuple[int, int, int], noise: float, rng: np.random.Generator) -> np.ndarray:
    """Textured soft tissue (HU) in an elliptic body surrounded by air, before the noise."""
    body = _body_radius(shape) < 1
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
    lesion = _ellipsoid(shape, radius, radius * 0.6)
    array = _tissue(shape, noise, rng)
    array[lesion] += contrast
    array += rng.normal(0, noise, shape)
    return Volume(array.astype(np.float32), spacing=spacing), lesion


def mr_lesion_volume(
    radius: float,
    contrast: float,
    half_length: float = 1.6,
    shape: tuple[int, int, int] = (24, 96, 96),
    fat: float = 600.0,
    noise: float = 12.0,
    seed: int = 0,
    spacing: tuple[float, float, float] = (1.0, 1.0, 5.0),
) -> tuple[Volume, np.ndarray]:
    """An MR-like slab (signal about 1000 in tissue, 0 outside the body) whose outer tenth is a rim of
    fat ``fat`` brighter than the tissue, holding one ellipsoidal lesion of ``radius`` pixels in plane
    and ``half_length`` slices along k (3 slices at the default), ``contrast`` brighter than the tissue
    (negative: darker); and its truth mask (bool [k, j, i]). The fat, not the lesion, sets the top of
    a percentile mapping, so a lesion of 80-150 stands out by only 0.05-0.09 of the scale."""
    rng = np.random.default_rng(seed)
    lesion = _ellipsoid(shape, radius, half_length)
    array = _tissue(shape, noise, rng)
    radial = _body_radius(shape)
    array[(radial > 0.8) & (radial < 1)] += fat
    array[lesion] += contrast
    array += rng.normal(0, noise, shape) + 1000.0
    return Volume(array.astype(np.float32), spacing=spacing, modality="MR"), lesion


def _ellipsoid(shape: tuple[int, int, int], radius: float, half_length: float) -> np.ndarray:
    """bool [k, j, i]: an ellipsoid at the volume's centre, ``radius`` pixels in plane, ``half_length`` slices along k."""
    k, j, i = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    centre = np.array(shape) / 2
    return ((k - centre[0]) / half_length) ** 2 + ((j - centre[1]) / radius) ** 2 + ((i - centre[2]) / radius) ** 2 < 1


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
