"""Segment everything on a slice or a slab: every distinct structure the model finds becomes a segment.

Each slice is segmented from a prompt grid (``automatic.generate_masks``). On a slab, masks on
neighbouring slices that overlap enough (IoU, matched one-to-one) are joined into one 3D object,
so a structure crossing the slab is one segment rather than one per slice.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..cancel import CancelToken, Progress
from ..errors import CancelledError, PromptError
from ..imageio import Segment
from ..predictor import VolumePredictor
from ..volume import Axis, put_slice
from .automatic import SliceMasks, generate_masks
from .types import EverythingObject, EverythingResult, GridOptions


def segment_everything(
    predictor: VolumePredictor,
    axis: Axis,
    first: int,
    last: int | None = None,
    options: GridOptions | None = None,
    link_iou: float = 0.5,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> EverythingResult:
    """Find every structure on slices ``first``..``last`` (inclusive; one slice when ``last`` is None)."""
    axis = Axis(axis)
    options = options or GridOptions()
    last = first if last is None else last
    if last < first:
        raise PromptError(f"The slab {first}..{last} is empty: its last slice comes before its first.")
    if not 0.0 < link_iou <= 1.0:
        raise ValueError(f"link_iou must lie in (0, 1], got {link_iou}.")
    volume = predictor.require_volume()
    if first > last:
        raise PromptError(f"The slab {first}..{last} is empty: its first slice comes after its last.")
    for index in (first, last):
        volume.check_slice_index(axis, index)
    per_slice: list[tuple[int, SliceMasks]] = []
    for done, index in enumerate(range(first, last + 1)):
        if cancel is not None and cancel.cancelled:
            raise CancelledError("Segment everything cancelled; nothing was written.")
        masks = generate_masks(predictor.model, predictor.embed(axis, index), options, cancel)
        per_slice.append((index, masks))
        if progress is not None:
            progress(done + 1, last - first + 1)
    objects = link_slices(per_slice, link_iou)
    objects.sort(key=lambda item: item.score, reverse=True)
    return EverythingResult(axis, objects, {index: len(masks) for index, masks in per_slice})


def link_slices(per_slice: list[tuple[int, SliceMasks]], link_iou: float) -> list[EverythingObject]:
    """Join masks of consecutive slices into objects: the one-to-one matching of largest total
    IoU, keeping only pairs that overlap by at least ``link_iou``."""
    objects: list[EverythingObject] = []
    open_objects: list[EverythingObject] = []  # objects with a mask on the previous slice
    previous_index: int | None = None
    for index, found in per_slice:
        continued: list[EverythingObject | None] = [None] * len(found)
        if previous_index is not None and index == previous_index + 1 and open_objects and len(found):
            ious = _mask_ious(np.stack([item.masks[previous_index] for item in open_objects]), found.masks)
            rows, columns = linear_sum_assignment(ious, maximize=True)
            for row, column in zip(rows, columns):
                if ious[row, column] >= link_iou:
                    continued[column] = open_objects[row]
        open_objects = []
        for number, target in enumerate(continued):
            if target is None:
                target = EverythingObject()
                objects.append(target)
            target.masks[index] = found.masks[number]
            target.scores.append(float(found.predicted_iou[number]))
            open_objects.append(target)
        previous_index = index
    return objects


def _mask_ious(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """IoU of every mask in ``first`` (A, H, W) with every mask in ``second`` (B, H, W)."""
    a = first.reshape(len(first), -1).astype(np.float32)
    b = second.reshape(len(second), -1).astype(np.float32)
    intersection = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


def as_segments(result: EverythingResult, shape: tuple[int, int, int], limit: int = 255) -> list[Segment]:
    """The ``limit`` best objects as 3D segments, largest first so that a smaller structure
    inside a larger one stays visible when they share one label layer."""
    chosen = result.objects[:limit]
    segments = []
    for number, item in enumerate(chosen, start=1):
        mask = np.zeros(shape, dtype=bool)
        for index, slice_mask in item.masks.items():
            put_slice(mask, result.axis, index, slice_mask)
        segments.append(Segment(f"Structure {number} (IoU {item.score:.2f})", mask))
    return sorted(segments, key=lambda segment: int(segment.mask.sum()), reverse=True)
