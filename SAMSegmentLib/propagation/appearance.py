"""What an object looks like to the model's image encoder, learnt from its prompted slice: the
embedding cells inside its mask and those around it.

A carried slice's pixels whose cells resemble the object's surroundings more than the object are
not the object. The box carried from slice to slice holds a little of the neighbours, and where
they look alike in intensity (the 3 mm MR's liver and its neighbours) the model's mask grows into
them slice by slice; the encoder's features tell them apart where one intensity gate did not
(it cut heterogeneous organs: Testing/calibration/2026-11-30_appearance_gate.json).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ..models import ImageEmbedding
from ..models.sam import IMAGE_EMBEDDINGS


@dataclass
class ObjectAppearance:
    """Unit feature vectors of the cells inside the prompted mask and of those around it."""

    object_cells: torch.Tensor  # (n, C)
    surrounding_cells: torch.Tensor  # (m, C)
    input_size: int  # the model's square input, which the cell grid covers
    neighbours: int  # cells each pixel is compared with on either side (a k-nearest-neighbour vote)

    @classmethod
    def learn(
        cls,
        embedding: ImageEmbedding,
        mask: np.ndarray,
        input_size: int,
        min_object_cells: int,
        surrounding_cells: int,
        neighbours: int,
    ) -> ObjectAppearance | None:
        """The appearance of the object ``mask`` (bool [y, x] at slice size) covers in the slice's
        whole-slice ``embedding``; None when it fills fewer than ``min_object_cells`` cells at least
        half (a thin or small object has no cell of its own to learn from), or when it leaves no
        surroundings in view."""
        features = embedding.features[IMAGE_EMBEDDINGS]
        grid_hw = (int(features.shape[-2]), int(features.shape[-1]))
        occupancy = _cell_occupancy(mask, embedding, input_size, grid_hw)
        inside = occupancy >= 0.5
        if int(inside.sum()) < min_object_cells:
            return None
        seen = _cell_occupancy(np.ones(mask.shape, bool), embedding, input_size, grid_hw) > 0  # not padding
        around = ndimage.binary_dilation(occupancy > 0, iterations=surrounding_cells) & (occupancy == 0) & seen
        if not around.any():
            return None
        cells = _unit_cells(features)
        return cls(
            cells[torch.from_numpy(inside.ravel())], cells[torch.from_numpy(around.ravel())], input_size, neighbours
        )

    def foreign(self, embedding: ImageEmbedding) -> np.ndarray:
        """Pixels (bool [y, x] at slice size) of the slice ``embedding`` encodes that look more like
        the object's surroundings than like the object."""
        features = embedding.features[IMAGE_EMBEDDINGS]
        cells = _unit_cells(features.to(self.object_cells.device))
        margin = self._likeness(cells, self.object_cells) - self._likeness(cells, self.surrounding_cells)
        grid = margin.reshape(1, 1, *features.shape[-2:]).float().cpu()
        # Up to the model's input first, then the slice's part cut out: ``upsample_logits`` cuts at the
        # grid's own resolution, which rounds the slice's edge to a whole cell (1/64 of the
        # input's side) and moved the 3 mm MR's spinal cord from 0.74 to 0.45 (one box, LiteMedSAM).
        model = F.interpolate(grid, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        height, width = embedding.resized_hw
        pixels = F.interpolate(
            model[..., :height, :width], size=embedding.original_hw, mode="bilinear", align_corners=False
        )
        return pixels[0, 0].numpy() <= 0.0

    def _likeness(self, cells: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Mean cosine similarity of each cell to its ``neighbours`` most similar reference cells."""
        similarity = cells @ reference.T
        return similarity.topk(min(self.neighbours, reference.shape[0]), dim=1).values.mean(dim=1)


def remove_foreign_growth(mask: np.ndarray, previous: np.ndarray, foreign: np.ndarray) -> np.ndarray:
    """``mask`` without the pixels it adds to ``previous`` where they look ``foreign``; of what is
    left, the parts touching ``previous``, holes filled. Pixels the previous slice held are never
    removed, so an object whose look changes along its length (a stomach's content) is not cut away."""
    kept = mask & ~(foreign & ~previous)
    labels, count = ndimage.label(kept)
    if count:
        touching = np.unique(labels[kept & previous])
        touching = touching[touching > 0]
        if touching.size:
            kept = np.isin(labels, touching)
    return ndimage.binary_fill_holes(kept)


def _unit_cells(features: torch.Tensor) -> torch.Tensor:
    """(H*W, C) unit vectors of a (1, C, H, W) feature grid."""
    return F.normalize(features[0].float(), dim=0).flatten(1).T


def _cell_occupancy(
    mask: np.ndarray, embedding: ImageEmbedding, input_size: int, grid_hw: tuple[int, int]
) -> np.ndarray:
    """Share of each encoder cell the mask covers, the mask placed as the slice is on the model's
    input (resized, padded at the bottom and right)."""
    height, width = embedding.resized_hw
    resized = F.interpolate(
        torch.from_numpy(mask.astype(np.float32))[None, None],
        size=(height, width),
        mode="bilinear",
        align_corners=False,
    )
    canvas = torch.zeros(1, 1, input_size, input_size)
    canvas[..., :height, :width] = resized
    return F.adaptive_avg_pool2d(canvas, grid_hw)[0, 0].numpy()
