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
