"""SAM prior maps for training a segmentation network (SAMAug, "Input Augmentation with SAM").

Automatic segmentation of each slice gives a segmentation prior (every mask painted with its
quality, summed where masks overlap as SAMAug does, or their maximum) and a boundary prior (mask
boundaries painted likewise, their maximum). Stacked with the image as channels they are the
augmented input of a U-Net. Quality is the mask's stability score (SAMAug) or predicted IoU.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..atomic import written_together
from ..cancel import CancelToken, Progress
from ..errors import CancelledError
from ..imageio import write_image
from ..predictor import VolumePredictor
from ..volume import Axis, Volume, put_slice
from .automatic import SliceMasks, generate_masks
from .sitk_images import image_on_grid
from .types import PRIOR_GRID_OPTIONS, Combine, GridOptions, PriorMaps, Quality


def slice_prior_maps(
    found: SliceMasks, quality: Quality = Quality.STABILITY, combine: Combine = Combine.SUM
) -> tuple[np.ndarray, np.ndarray]:
    """(segmentation prior, boundary prior) of one slice's masks, float32 [y, x]."""
    height, width = found.masks.shape[1:]
    prior = np.zeros((height, width), dtype=np.float32)
    boundary = np.zeros((height, width), dtype=np.float32)
    weights = np.clip(found.stability if Quality(quality) is Quality.STABILITY else found.predicted_iou, 0.0, 1.0)
    for mask, weight in zip(found.masks, weights):
        if Combine(combine) is Combine.SUM:
            prior[mask] += weight
        else:
            np.maximum(prior, np.where(mask, weight, 0.0), out=prior)
        np.maximum(boundary, np.where(_thick_boundary(mask), weight, 0.0), out=boundary)
    return prior, boundary


def _thick_boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels on either side of the mask's edge (skimage's 'thick' boundaries)."""
    return ndimage.binary_dilation(mask) & ~ndimage.binary_erosion(mask)


def volume_prior_maps(
    predictor: VolumePredictor,
    axis: Axis,
    slices: Iterable[int],
    options: GridOptions = PRIOR_GRID_OPTIONS,
    quality: Quality = Quality.STABILITY,
    combine: Combine = Combine.SUM,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> PriorMaps:
    """Prior maps of the given slices along ``axis``, on the predictor's volume grid."""
    axis = Axis(axis)
    volume = predictor.volume
    if volume is None:
        raise RuntimeError("No volume is set: call set_volume() first.")
    indices = list(slices)
    prior = np.zeros(volume.array.shape, dtype=np.float32)
    boundary = np.zeros(volume.array.shape, dtype=np.float32)
    counts: dict[int, int] = {}
    started = time.perf_counter()
    for done, index in enumerate(indices):
        if cancel is not None and cancel.cancelled:
            raise CancelledError("Prior maps cancelled; nothing was written.")
        found = generate_masks(predictor.model, predictor.embed(axis, index), options, cancel)
        slice_prior, slice_boundary = slice_prior_maps(found, quality, combine)
        put_slice(prior, axis, index, slice_prior)
        put_slice(boundary, axis, index, slice_boundary)
        counts[index] = len(found)
        if progress is not None:
            progress(done + 1, len(indices))
    elapsed = time.perf_counter() - started
    return PriorMaps(prior, boundary, axis, indices, counts, elapsed / max(1, len(indices)))


# The files ``write_prior_maps`` writes, by role.
PRIOR_MAP_FILES = {role: f"sam_{role}.nrrd" for role in ("prior", "boundary", "stacked")}


def write_prior_maps(
    directory: str | os.PathLike[str], volume: Volume, image01: np.ndarray, maps: PriorMaps
) -> dict[str, Path]:
    """Write the priors and the stacked (image, prior, boundary) input on the volume's geometry.

    ``image01`` is the volume as the model saw it (intensity mapped to [0, 1]). Returns the paths
    by role: ``prior``, ``boundary`` and ``stacked`` (a three-component NRRD that Slicer loads as
    a vector volume and a U-Net reads as channels), all three or none.
    """
    directory = Path(directory)
    images = {
        "prior": image_on_grid(maps.prior, volume),
        "boundary": image_on_grid(maps.boundary, volume),
        "stacked": image_on_grid(
            np.stack([image01.astype(np.float32), maps.prior, maps.boundary], axis=-1), volume, is_vector=True
        ),
    }
    # One set: a failure leaves the three earlier maps, never a mix of old and new ones.
    with written_together() as outputs:
        written = {
            role: write_image(directory / PRIOR_MAP_FILES[role], image, outputs) for role, image in images.items()
        }
    return written
