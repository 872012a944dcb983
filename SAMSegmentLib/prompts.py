"""Prompts on one slice: positive/negative points and a box, in slice pixel coordinates (x, y)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import PromptError
from .registry import ModelSpec, PromptKind

POSITIVE = 1
NEGATIVE = 0


@dataclass
class Prompts:
    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    box: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1, corners inclusive

    def add_point(self, x: float, y: float, positive: bool = True) -> None:
        self.points.append((float(x), float(y)))
        self.labels.append(POSITIVE if positive else NEGATIVE)

    @property
    def empty(self) -> bool:
        return not self.points and self.box is None

    def points_array(self) -> np.ndarray | None:
        return np.asarray(self.points, dtype=np.float64).reshape(-1, 2) if self.points else None

    def labels_array(self) -> np.ndarray | None:
        return np.asarray(self.labels, dtype=np.int64) if self.points else None

    def box_array(self) -> np.ndarray | None:
        if self.box is None:
            return None
        x0, y0, x1, y1 = self.box
        return np.array([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], dtype=np.float64)

    def validate(self, slice_hw: tuple[int, int], spec: ModelSpec) -> None:
        """Raise PromptError for an empty prompt set, a prompt off the slice or one the model cannot take."""
        if self.empty:
            raise PromptError("Add at least one point or a box before segmenting.")
        if len(self.points) != len(self.labels):
            raise PromptError("Every point needs a label (positive or negative).")
        # NaN fails every comparison below, so it would pass them all and decode into nothing.
        for x, y in self.points:
            if not (math.isfinite(x) and math.isfinite(y)):
                raise PromptError(f"Point ({x:g}, {y:g}) is not a finite position on the slice.")
        if self.box is not None and not all(math.isfinite(value) for value in self.box):
            raise PromptError(f"Box {tuple(float(v) for v in self.box)} has a corner that is not a finite position.")
        if self.points and not spec.accepts(PromptKind.POINT):
            raise PromptError(
                f"{spec.name} takes only box prompts; draw a box around the structure instead of clicking points."
            )
        if self.box is not None and not spec.accepts(PromptKind.BOX):
            raise PromptError(f"{spec.name} does not take box prompts.")
        if self.points and POSITIVE not in self.labels and self.box is None:
            raise PromptError("Negative points alone select nothing: add a positive point or a box.")
        height, width = slice_hw
        for x, y in self.points:
            if not (0 <= x <= width - 1 and 0 <= y <= height - 1):
                raise PromptError(f"Point ({x:g}, {y:g}) is outside the slice (0..{width - 1}, 0..{height - 1}).")
        box = self.box_array()
        if box is not None:
            x0, y0, x1, y1 = box
            if x1 < 0 or y1 < 0 or x0 > width - 1 or y0 > height - 1:
                raise PromptError(
                    f"Box ({x0:g}, {y0:g})-({x1:g}, {y1:g}) is outside the slice (0..{width - 1}, 0..{height - 1})."
                )
            if x1 - x0 < 1 or y1 - y0 < 1:
                raise PromptError("The box is too small: drag over the structure to draw a box at least 2 pixels wide.")

    def widened(self, margin_xy: tuple[float, float], slice_hw: tuple[int, int]) -> Prompts:
        """The box alone, widened by ``margin_xy`` pixels on each side and cut to the slice."""
        box = self.box_array()
        if box is None:
            raise ValueError("Only a box can be widened.")
        mx, my = margin_xy
        x0, y0, x1, y1 = (float(v) for v in _cut_to_slice(box + np.array([-mx, -my, mx, my]), slice_hw))
        return Prompts(box=(x0, y0, x1, y1))

    def widened_box(self, margin_xy: tuple[float, float], slice_hw: tuple[int, int]) -> np.ndarray | None:
        """The box widened by ``margin_xy`` pixels on each side, cut to the slice."""
        return None if self.box is None else self.widened(margin_xy, slice_hw).box_array()

    def clipped_box(self, slice_hw: tuple[int, int]) -> np.ndarray | None:
        """The box with a part hanging over the slice edge cut off."""
        box = self.box_array()
        return None if box is None else _cut_to_slice(box, slice_hw)


def _cut_to_slice(box: np.ndarray, slice_hw: tuple[int, int]) -> np.ndarray:
    """``box`` (x0, y0, x1, y1) with a part hanging over the slice edge cut off."""
    height, width = slice_hw
    return np.clip(box, 0, [width - 1, height - 1, width - 1, height - 1])
