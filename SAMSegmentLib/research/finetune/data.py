"""Training data for decoder fine-tuning: slices of labelled volumes, each embedded once.

A slice's embedding is computed by the frozen image encoder once and kept, so every epoch
afterwards costs mask-decoder time only. All structures labelled on a slice are trained
together, as a batch of box prompts on that slice's one embedding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...cancel import CancelToken, Progress
from ...errors import CancelledError, SAMSegmentError
from ...models.base import ImageEmbedding
from ...predictor import VolumePredictor
from ...volume import Axis


@dataclass
class TrainingSlice:
    """One labelled slice: its kept embedding and a mask per structure present on it."""

    case: int
    index: int
    embedding: ImageEmbedding
    structures: list[str]
    masks: np.ndarray  # bool (S, H, W), one per structure


def label_values(names: dict[int, str], structures: Sequence[str], missing_ok: bool = False) -> dict[str, int]:
    """The label value of each structure, named as in the label names or by its number.

    A structure not labelled is an error, or left out with ``missing_ok`` (one of several images).
    """
    by_name = {name: value for value, name in names.items()}
    values = {}
    for structure in structures:
        if structure in by_name:
            values[structure] = by_name[structure]
        elif structure.isdigit() and int(structure) in names:
            values[structure] = int(structure)
        elif not missing_ok:
            known = ", ".join(sorted(names.values())) or "none"
            raise SAMSegmentError(f"No structure '{structure}' in the labels. Labelled structures: {known}.")
    return values


def embed_labelled_slices(
    predictor: VolumePredictor,
    labels: np.ndarray,
    values: dict[str, int],
    axis: Axis,
    case: int,
    min_pixels: int = 10,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> list[TrainingSlice]:
    """Embed every slice along ``axis`` on which a chosen structure covers ``min_pixels`` or more."""
    axis = Axis(axis)
    labelled = []
    for index in range(labels.shape[axis.array_axis]):
        slice_labels = np.take(labels, index, axis=axis.array_axis)
        present = {name: slice_labels == value for name, value in values.items()}
        present = {name: mask for name, mask in present.items() if int(mask.sum()) >= min_pixels}
        if present:
            labelled.append((index, present))
    slices = []
    for done, (index, present) in enumerate(labelled):
        if cancel is not None and cancel.cancelled:
            raise CancelledError("Fine-tuning cancelled while embedding slices; nothing was saved.")
        cached = predictor.embed(axis, index)
        # A copy made outside inference mode: autograd refuses to save inference-mode tensors.
        embedding = ImageEmbedding(
            {key: value.clone() for key, value in cached.features.items()}, cached.original_hw, cached.resized_hw
        )
        slices.append(TrainingSlice(case, index, embedding, list(present), np.stack(list(present.values()))))
        if progress is not None:
            progress(done + 1, len(labelled))
    return slices


def mask_box(mask: np.ndarray) -> np.ndarray:
    """The tight box (x0, y0, x1, y1), inclusive pixel bounds, of a non-empty 2D mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    columns = np.flatnonzero(mask.any(axis=0))
    return np.array([columns[0], rows[0], columns[-1], rows[-1]], dtype=np.float64)


def jittered_boxes(masks: np.ndarray, jitter_px: float, rng: np.random.Generator) -> np.ndarray:
    """Each mask's tight box with every side moved by up to ``jitter_px`` either way, as a user's
    box would be, kept on the slice and at least two pixels wide."""
    height, width = masks.shape[1:]
    largest = np.array([width - 1.0, height - 1.0])
    boxes = np.stack([mask_box(mask) for mask in masks])
    boxes += rng.uniform(-jitter_px, jitter_px, size=boxes.shape)
    low = np.minimum(boxes[:, :2], boxes[:, 2:])  # a large jitter may swap the sides of a small box
    high = np.clip(np.maximum(np.maximum(boxes[:, :2], boxes[:, 2:]), low + 1.0), 0.0, largest)
    low = np.clip(np.minimum(low, high - 1.0), 0.0, largest)
    return np.concatenate([low, high], axis=1)
