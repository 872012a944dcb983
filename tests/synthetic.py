"""Synthetic volumes made by the tests: no anatomy needed, known ground truth."""

from __future__ import annotations

import numpy as np

from SAMSegmentLib.volume import Volume


def make_ct_phantom(shape: tuple[int, int, int] = (12, 48, 64), seed: int = 0) -> Volume:
    """A CT-like volume in HU: air outside a soft-tissue body holding a bright ellipsoid 'organ'."""
    rng = np.random.default_rng(seed)
    nk, nj, ni = shape
    k, j, i = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    body = ((j - nj / 2) / (nj * 0.45)) ** 2 + ((i - ni / 2) / (ni * 0.45)) ** 2 < 1
    organ = ((k - nk / 2) / (nk * 0.35)) ** 2 + ((j - nj / 2) / (nj * 0.2)) ** 2 + ((i - ni / 2) / (ni * 0.2)) ** 2 < 1
    array = np.full(shape, -1000.0)
    array[body] = 30.0
    array[organ] = 150.0
    array += rng.normal(0, 5, shape)
    return Volume(array.astype(np.int16), spacing=(0.8, 0.9, 2.5), origin=(-10.0, 20.0, 5.0), modality="")


def make_lesion_volume(
    radius: float, contrast: float, shape: tuple[int, int, int] = (40, 96, 96), noise: float = 12.0, seed: int = 0
) -> tuple[Volume, np.ndarray]:
    """A CT-like slab of textured soft tissue holding one ellipsoidal lesion (flattened along k, as a
    lesion in 2.5 mm slices is); ``contrast`` in HU, positive for enhancing, negative for hypodense."""
    from scipy import ndimage

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
    return Volume(array.astype(np.float32), spacing=(0.8, 0.8, 2.5)), lesion
