"""The parts of a slice a model sees: the whole slice, and for a model that zooms to the prompt
(``ModelSpec.zoom_context``) a window of the slice around the prompts at the slice's own resolution.

A model whose input is smaller than the slice (LiteMedSAM: 256 px, a CT slice: 512) otherwise sees
the slice shrunk, and thin structures vanish: ribs in the shared 1 mm CT are 2-4 px wide on
LiteMedSAM's grid. Windows are placed on a grid so that nearby prompts on a slice (a box redrawn,
the boxes propagation carries along a track) share one window and its embedding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .prompts import Prompts

# Windows start on multiples of this share of the model input's side (in slice pixels), and their
# sides are multiples of it: fine enough to keep the prompts well inside, coarse enough to reuse.
_GRID_SHARE = 8


@dataclass(frozen=True)
class SliceWindow:
    """Rows ``y0 .. y0 + height - 1`` and columns ``x0 .. x0 + width - 1`` of a slice."""

    y0: int
    x0: int
    height: int
    width: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def crop(self, image: np.ndarray) -> np.ndarray:
        """The window's part of a slice ``[y, x]``."""
        return image[self.y0 : self.y0 + self.height, self.x0 : self.x0 + self.width]

    def to_window(self, prompts: Prompts) -> Prompts:
        """``prompts`` in the window's pixel coordinates."""
        box = None
        if prompts.box is not None:
            x0, y0, x1, y1 = prompts.box
            box = (x0 - self.x0, y0 - self.y0, x1 - self.x0, y1 - self.y0)
        points = [(x - self.x0, y - self.y0) for x, y in prompts.points]
        return Prompts(points=points, labels=list(prompts.labels), box=box)

    def paste(self, window_mask: np.ndarray, slice_hw: tuple[int, int]) -> np.ndarray:
        """A mask over the window placed on an empty slice of ``slice_hw``."""
        mask = np.zeros(slice_hw, dtype=window_mask.dtype)
        mask[self.y0 : self.y0 + self.height, self.x0 : self.x0 + self.width] = window_mask
        return mask


def prompt_window(prompts: Prompts, slice_hw: tuple[int, int], input_size: int, context: float) -> SliceWindow | None:
    """The window around ``prompts`` for a model with an ``input_size`` input, or None for the whole slice.

    The window's side is ``context`` times the prompts' extent (the box, or the points' spread),
    and never less than ``input_size`` slice pixels, so the model never sees the slice magnified
    (magnified twice, the 1 mm CT's pancreas lost 0.15). None when that side covers the slice
    anyway (a slice no larger than the input, a large structure).
    """
    extent = _extent(prompts)
    grid = max(1, input_size // _GRID_SHARE)
    side = max(input_size, grid * math.ceil(context * max(extent[2] - extent[0], extent[3] - extent[1]) / grid))
    height, width = slice_hw
    if side >= height and side >= width:
        return None
    centre_x, centre_y = (extent[0] + extent[2]) / 2, (extent[1] + extent[3]) / 2
    y0, window_height = _span(centre_y, side, height, grid)
    x0, window_width = _span(centre_x, side, width, grid)
    return SliceWindow(y0, x0, window_height, window_width)


def _extent(prompts: Prompts) -> tuple[float, float, float, float]:
    """x0, y0, x1, y1 around the box, or around the points when there is no box."""
    box = prompts.box_array()
    if box is not None:
        x0, y0, x1, y1 = (float(v) for v in box)
        return x0, y0, x1, y1
    points = prompts.points_array()
    assert points is not None, "validated prompts hold a box or points"
    (x0, y0), (x1, y1) = points.min(0), points.max(0)
    return float(x0), float(y0), float(x1), float(y1)


def _span(centre: float, side: int, length: int, grid: int) -> tuple[int, int]:
    """Start and size along one axis: ``side`` centred near ``centre`` on the grid, inside ``length``."""
    if side >= length:
        return 0, length
    start = grid * math.floor((centre - side / 2) / grid + 0.5)
    return min(max(start, 0), length - side), side
