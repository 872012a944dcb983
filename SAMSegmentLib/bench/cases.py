"""What the benchmark segments: a synthetic CT with one bright organ, or an image from disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..datasets import load_labelled_case
from ..imageio import read_volume
from ..volume import Axis, Volume

Box = tuple[float, float, float, float]

# The synthetic organ: an ellipsoid of liver-like contrast in a soft-tissue body, as
# fractions of the volume size (centre k, j, i and semi-axes k, j, i).
_ORGAN_CENTRE = (0.5, 0.45, 0.38)
_ORGAN_RADII = (0.4, 0.16, 0.2)
_HU_AIR, _HU_FAT, _HU_TISSUE, _HU_ORGAN, _HU_BONE = -1000.0, -90.0, 35.0, 140.0, 700.0
_NOISE_HU = 12.0


@dataclass
class BenchCase:
    """A volume, the slice to prompt and a box around the object on it."""

    volume: Volume
    seed_index: int
    box: Box
    description: str
    axis: Axis = Axis.AXIAL


def synthetic_ct(slices: int = 64, size: int = 512, seed: int = 0) -> BenchCase:
    """A CT-like volume in HU (``size`` x ``size`` x ``slices``, int16), built slice by slice so
    300 slices need no more memory than the volume itself: air, a fat-rimmed soft-tissue
    body, a vertebra and a bright ellipsoid organ spanning 80% of the slices."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    body = ((x - 0.5) / 0.44) ** 2 + ((y - 0.5) / 0.36) ** 2
    spine = ((x - 0.5) / 0.05) ** 2 + ((y - 0.74) / 0.05) ** 2 < 1
    ck, cj, ci = _ORGAN_CENTRE
    rk, rj, ri = _ORGAN_RADII
    array = np.empty((slices, size, size), dtype=np.int16)
    for k in range(slices):
        hu = np.full((size, size), _HU_AIR, dtype=np.float32)
        hu[body < 1] = _HU_FAT
        hu[body < 0.85] = _HU_TISSUE
        hu[spine] = _HU_BONE
        depth = ((k + 0.5) / slices - ck) / rk
        organ = ((x - ci) / ri) ** 2 + ((y - cj) / rj) ** 2 < 1 - depth**2
        hu[organ] = _HU_ORGAN
        hu += rng.normal(0.0, _NOISE_HU, hu.shape).astype(np.float32)
        array[k] = np.round(hu).astype(np.int16)
    volume = Volume(array, spacing=(0.8, 0.8, 2.5), origin=(0.0, 0.0, 0.0), modality="CT")
    seed_index = int(ck * slices)
    return BenchCase(
        volume,
        seed_index,
        _organ_box(seed_index, slices, size),
        f"synthetic CT {size}x{size}x{slices} with an ellipsoid organ",
    )


def image_case(image: Path, labels: Path | None = None, structure: str | None = None) -> BenchCase:
    """An image from disk. With a label volume, the box surrounds ``structure`` (default: the
    largest label) on its largest axial slice; without one, it is the central half of the
    middle slice, which times the models the same whatever it selects."""
    if labels is None:
        volume = read_volume(image)
        middle = volume.slice_count(Axis.AXIAL) // 2
        height, width = volume.slice_shape(Axis.AXIAL)
        box = (width * 0.25, height * 0.25, width * 0.75, height * 0.75)
        return BenchCase(volume, middle, box, f"{image} (no labels: central box)")
    names_json = labels.with_name("labels.json")
    case = load_labelled_case(image, labels, names_json if names_json.exists() else None)
    name = structure or max(case.names.values(), key=lambda n: int(case.mask(n).sum()))
    mask = case.mask(name)
    seed_index = int(np.argmax(mask.sum(axis=(1, 2))))
    return BenchCase(case.volume, seed_index, mask_box(mask[seed_index]), f"{image}, {name}")


def _organ_box(k: int, slices: int, size: int) -> Box:
    """The organ's bounding box on slice ``k``, from its ellipsoid (exact, unlike a threshold
    that would also catch the vertebra and noise)."""
    ck, cj, ci = _ORGAN_CENTRE
    rk, rj, ri = _ORGAN_RADII
    shrink = float(np.sqrt(max(0.0, 1 - (((k + 0.5) / slices - ck) / rk) ** 2)))
    half_x, half_y = ri * shrink * size, rj * shrink * size
    return ci * size - half_x, cj * size - half_y, ci * size + half_x, cj * size + half_y


def mask_box(mask: np.ndarray) -> Box:
    """(x0, y0, x1, y1) around the true pixels of a 2D mask, corners inclusive."""
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())
