"""Collect a propagation's slices on the GUI thread and turn its outcome into one write.

Slices arrive one by one for the live preview; the segmentation is written once, from the
propagation's final (or, after Cancel, partial) result, so a single undo restores it as it
was before the propagation. A cancelled propagation keeps the slices already finished.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from SAMSegmentLib.volume import Axis, put_slice

from .segment_writer import MaskWrite

if TYPE_CHECKING:  # the propagation package imports torch, which may not be installed yet
    from SAMSegmentLib.propagation import PropagationResult, SliceResult


class PropagationCollector:
    """One propagation of one or more objects (segment IDs) along ``axis`` on a grid of ``shape``."""

    def __init__(self, axis: Axis, shape: tuple[int, int, int]) -> None:
        self.axis = axis
        self.preview = np.zeros(shape, bool)  # every object's finished slices, for display
        self.slices: dict[str, set[int]] = {}
        self.done = 0
        self.planned = 0

    def addSlice(self, result: SliceResult) -> None:
        put_slice(self.preview, self.axis, result.index, result.mask)
        self.slices.setdefault(result.object_id, set()).add(result.index)

    def setProgress(self, done: int, planned: int) -> None:
        self.done, self.planned = done, planned

    def maskWrites(self, result: PropagationResult) -> list[MaskWrite]:
        """The writes that put every finished slice of every object into its segment."""
        writes = []
        for outcome in result.objects.values():
            if outcome.slices:
                writes.append(MaskWrite(outcome.object_id, outcome.mask, self.axis, sorted(outcome.slices)))
        return writes


def summary(result: PropagationResult) -> str:
    """One line per object saying where and why propagation stopped, for the status label."""
    lines = []
    for outcome in result.objects.values():
        if outcome.absent:
            lines.append("Nothing was found at the prompts; nothing was written.")
            continue
        first, last = min(outcome.slices), max(outcome.slices)
        stops = "; ".join(f"{stop.direction}: {stop.reason}" for stop in outcome.stops)
        lines.append(f"Segmented {len(outcome.slices)} slices ({first} to {last}). {stops}".strip())
    if result.cancelled:
        lines.append("Cancelled: the slices finished before the cancel were kept (one undo step).")
    return "\n".join(lines)
