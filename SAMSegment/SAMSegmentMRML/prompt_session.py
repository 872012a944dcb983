"""The prompts the user has placed, all on one slice: positive and negative points and a box.

A prompt on another slice (or in a view along another axis) starts a new prompt set, so
the prompts sent to the model always belong to the slice being segmented.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from SAMSegmentLib.prompts import Prompts
from SAMSegmentLib.volume import Axis, slice_to_ijk

from .slice_views import SlicePosition


@dataclass(frozen=True)
class PromptPoint:
    xy: tuple[float, float]
    positive: bool


class PromptSession:
    """Prompt bookkeeping for the effect; ``revision`` changes with every edit."""

    def __init__(self) -> None:
        self.axis: Axis | None = None
        self.index: int | None = None
        self.points: list[PromptPoint] = []
        self.box: tuple[float, float, float, float] | None = None
        self.revision = 0

    @property
    def empty(self) -> bool:
        return not self.points and self.box is None

    def onSlice(self, position: SlicePosition) -> bool:
        return position.axis == self.axis and position.index == self.index

    def addPoint(self, position: SlicePosition, positive: bool) -> bool:
        """Add a point; True when it started a new prompt set (earlier prompts were on another slice)."""
        restarted = self._moveTo(position)
        self.points.append(PromptPoint(position.xy, positive))
        self._changed()
        return restarted

    def setBox(self, corner: SlicePosition, oppositeCorner: SlicePosition) -> bool:
        """Set the box (replacing an earlier one); True when it started a new prompt set."""
        if not corner.sameSlice(oppositeCorner):
            raise ValueError("Both corners of a box must be on the same slice.")
        restarted = self._moveTo(corner)
        (x0, y0), (x1, y1) = corner.xy, oppositeCorner.xy
        self.box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        self._changed()
        return restarted

    def removeAt(self, position: SlicePosition, radius: float) -> bool:
        """Remove the point nearest ``position`` within ``radius`` slice pixels, else the box if
        ``position`` is on or inside it; False when nothing is there."""
        if self.empty or not self.onSlice(position):
            return False
        distances = [math.dist(point.xy, position.xy) for point in self.points]
        if distances and min(distances) <= radius:
            nearest = distances.index(min(distances))
            del self.points[nearest]
        elif self.box is not None and _inside(self.box, position.xy, radius):
            self.box = None
        else:
            return False
        self._changed()
        return True

    def dropPoints(self) -> int:
        """Remove every point, keeping the box; how many were removed."""
        count = len(self.points)
        if count:
            self.points = []
            if self.box is None:
                self.axis = self.index = None
            self._changed()
        return count

    def clear(self) -> None:
        if self.empty and self.axis is None:
            return
        self.axis = self.index = None
        self.points, self.box = [], None
        self._changed()

    def enginePrompts(self) -> Prompts:
        """A copy of the prompts in the engine's form (safe to hand to another thread)."""
        prompts = Prompts(box=self.box)
        for point in self.points:
            prompts.add_point(*point.xy, positive=point.positive)
        return prompts

    def clickedVoxels(self) -> list[tuple[int, int, int]]:
        """The ``[k, j, i]`` voxel under each point, positive or negative."""
        voxels = []
        for point in self.points:
            i, j, k = (round(index) for index in slice_to_ijk(self.axis, self.index, point.xy))
            voxels.append((k, j, i))
        return voxels

    def _moveTo(self, position: SlicePosition) -> bool:
        if self.onSlice(position):
            return False
        restarted = not self.empty
        self.axis, self.index = position.axis, position.index
        self.points, self.box = [], None
        return restarted

    def _changed(self) -> None:
        self.revision += 1


def _inside(box: tuple[float, float, float, float], xy: tuple[float, float], margin: float) -> bool:
    x0, y0, x1, y1 = box
    return x0 - margin <= xy[0] <= x1 + margin and y0 - margin <= xy[1] <= y1 + margin
