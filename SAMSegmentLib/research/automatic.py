"""Automatic segmentation of one slice from a grid of prompts, shared by prior maps and
"segment everything".

As in Segment Anything's automatic mask generator: every grid prompt is decoded, masks whose
predicted IoU or stability (agreement of the mask at logit thresholds +-offset) is low are
dropped, and overlapping duplicates are removed by non-maximum suppression on their boxes.
Point models get SAM's point grid; box-only models (LiteMedSAM) get boxes tiled over the slice
at a few sizes. The default thresholds suit LiteMedSAM, whose predicted IoU and stability run
lower than SAM's (SAM's own generator uses 0.88 and 0.95): on an abdominal CT slice they keep
about ten masks, mostly organs, vertebrae and muscles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from segment_anything.utils.amg import (
    MaskData,
    batch_iterator,
    batched_mask_to_box,
    build_point_grid,
    calculate_stability_score,
)
from torchvision.ops import nms

from ..errors import CancelledError
from ..models.base import ImageEmbedding, PromptableModel
from ..propagation.types import CancelToken
from ..registry import PromptKind
from .decoding import decode_batch
from .types import GridOptions

# Logit threshold of a mask; the stability score thresholds +-offset around it.
_MASK_THRESHOLD = 0.0


@dataclass
class SliceMasks:
    """The masks kept on one slice, best predicted IoU first."""

    masks: np.ndarray  # bool (N, H, W)
    predicted_iou: np.ndarray  # (N,)
    stability: np.ndarray  # (N,)
    boxes: np.ndarray  # (N, 4) x0, y0, x1, y1, inclusive pixel bounds of each mask
    prompt_count: int  # prompts decoded to find them

    def __len__(self) -> int:
        return len(self.masks)


def point_grid(slice_hw: tuple[int, int], points_per_side: int) -> np.ndarray:
    """SAM's regular point grid over a slice, as (x, y) pixel coordinates."""
    height, width = slice_hw
    return build_point_grid(points_per_side) * np.array([width, height])


def box_grid(slice_hw: tuple[int, int], scales: tuple[float, ...], overlap: float) -> np.ndarray:
    """Boxes (x0, y0, x1, y1) tiling the slice at each scale, neighbours sharing ``overlap``."""
    height, width = slice_hw
    boxes = []
    for scale in scales:
        xs = _tile_starts(width, scale, overlap)
        ys = _tile_starts(height, scale, overlap)
        box_w, box_h = max(2.0, scale * width), max(2.0, scale * height)
        for y0 in ys:
            for x0 in xs:
                boxes.append((x0, y0, min(width - 1.0, x0 + box_w - 1), min(height - 1.0, y0 + box_h - 1)))
    return np.unique(np.asarray(boxes, dtype=np.float64), axis=0)


def _tile_starts(length: int, scale: float, overlap: float) -> np.ndarray:
    side = max(2.0, scale * length)
    stride = side * (1.0 - overlap)
    count = max(1, math.ceil((length - side) / stride - 1e-9) + 1)
    return np.linspace(0.0, max(0.0, length - side), count)


def grid_prompts(model: PromptableModel, slice_hw: tuple[int, int], options: GridOptions) -> np.ndarray:
    """The grid a model gets: points if it takes points, boxes otherwise."""
    if model.spec.accepts(PromptKind.POINT):
        return point_grid(slice_hw, options.points_per_side)
    return box_grid(slice_hw, options.box_scales, options.box_overlap)


def generate_masks(
    model: PromptableModel,
    embedding: ImageEmbedding,
    options: GridOptions,
    cancel: CancelToken | None = None,
) -> SliceMasks:
    """Decode the whole prompt grid on one slice embedding and keep the good, distinct masks."""
    height, width = embedding.original_hw
    uses_points = model.spec.accepts(PromptKind.POINT)
    prompts = grid_prompts(model, embedding.original_hw, options)
    # Several candidates per point resolve its ambiguity (part / object / group), as in SAM.
    multimask = uses_points and model.spec.multimask
    kept = MaskData()
    for (batch,) in batch_iterator(options.prompts_per_batch, prompts):
        if cancel is not None and cancel.cancelled:
            raise CancelledError("Automatic segmentation cancelled; nothing was written.")
        kept.cat(_decode_and_filter(model, embedding, np.asarray(batch), uses_points, multimask, options))
    if len(dict(kept.items()).get("masks", ())) == 0:
        empty = np.zeros(0)
        return SliceMasks(np.zeros((0, height, width), bool), empty, empty, np.zeros((0, 4)), len(prompts))
    keep = nms(kept["boxes"].float(), kept["iou_preds"].float(), options.nms_iou)  # sorted by score
    kept.filter(keep)
    return SliceMasks(
        masks=kept["masks"].cpu().numpy(),
        predicted_iou=kept["iou_preds"].float().cpu().numpy(),
        stability=kept["stability"].float().cpu().numpy(),
        boxes=kept["boxes"].cpu().numpy().astype(np.float64),
        prompt_count=len(prompts),
    )


def _decode_and_filter(
    model: PromptableModel,
    embedding: ImageEmbedding,
    batch: np.ndarray,
    uses_points: bool,
    multimask: bool,
    options: GridOptions,
) -> MaskData:
    with torch.inference_mode():
        if uses_points:
            low_res, iou = decode_batch(model, embedding, points_xy=batch, multimask=multimask)
        else:
            low_res, iou = decode_batch(model, embedding, boxes_xyxy=batch, multimask=multimask)
        logits = model.upsample_logits(low_res.flatten(0, 1), embedding)
    data = MaskData(logits=logits, iou_preds=iou.flatten())
    data.filter(data["iou_preds"] >= options.min_predicted_iou)
    data["stability"] = calculate_stability_score(data["logits"], _MASK_THRESHOLD, options.stability_offset)
    data.filter(data["stability"] >= options.min_stability)
    data["masks"] = data["logits"] > _MASK_THRESHOLD
    del data["logits"]
    data["boxes"] = batched_mask_to_box(data["masks"])
    data.filter(data["masks"].flatten(1).sum(dim=1) >= options.min_area_px)
    return data
