"""Collect a propagation's slices on the GUI thread and turn its outcome into one write.

Slices arrive one by one for the live preview and are kept, per object, on the session's grid;
the segmentation is written once, from those slices, when the engine's final (or, after Cancel,
partial) answer arrives, so a single undo restores it as it was before the propagation. A
cancelled propagation keeps the slices already finished. Each slice costs one slice, whatever the
volume's size: the engine is asked not to send the whole volume again at the end.
"""

from __future__ import annotations

import numpy as np
import slicer

from SAMSegmentLib.propagation.types import PropagationResult, SliceResult
from SAMSegmentLib.volume import Axis, put_slice

from .i18n import tr
from .segment_writer import MaskWrite, SegmentEditing, writeSegmentMasks


class PropagationCollector:
    """One propagation of one or more objects (segment IDs) along ``axis`` on a grid of ``shape``."""

    def __init__(
        self,
        axis: Axis,
        shape: tuple[int, int, int],
        names: dict[str, str] | None = None,
        clicks: dict[str, list[tuple[int, int, int]]] | None = None,
    ) -> None:
        """``names``: each object's segment name when it started, to recreate a segment removed
        meanwhile; ``clicks``: each object's clicked voxels on the prompted slice (``MaskWrite.clicks``)."""
        self.axis = axis
        self.shape = shape
        self.names = dict(names or {})
        self.clicks = dict(clicks or {})
        self.masks: dict[str, np.ndarray] = {}  # object ID -> bool [k, j, i], its finished slices
        self.slices: dict[str, set[int]] = {}
        self.done = 0
        self.planned = 0

    def addSlice(self, result: SliceResult) -> None:
        if result.object_id not in self.masks:
            self.masks[result.object_id] = np.zeros(self.shape, bool)
        put_slice(self.masks[result.object_id], self.axis, result.index, result.mask)
        self.slices.setdefault(result.object_id, set()).add(result.index)

    def setProgress(self, done: int, planned: int) -> None:
        self.done, self.planned = done, planned

    def maskWrites(self, result: PropagationResult) -> list[MaskWrite]:
        """The writes that put every finished slice of every object of ``result`` into its segment."""
        writes = []
        for outcome in result.objects.values():
            slices = sorted(set(outcome.slices) & self.slices.get(outcome.object_id, set()))
            if slices:
                mask, clicks = self.masks[outcome.object_id], self.clicks.get(outcome.object_id, [])
                writes.append(MaskWrite(outcome.object_id, mask, self.axis, slices, clicks))
        return writes

    def write(
        self,
        editing: SegmentEditing,
        segmentationNode: slicer.vtkMRMLSegmentationNode,
        geometry: slicer.vtkOrientedImageData,
        result: PropagationResult,
    ) -> list[str]:
        """Write the finished slices of ``result`` into the segments they were started for, as one
        undo step, whatever the user did meanwhile: another segment selected (it stays selected),
        a target segment removed (a new one of the same name takes its slices). What to tell the user."""
        writes = self.maskWrites(result)
        segmentation = segmentationNode.GetSegmentation()
        recreated = [write for write in writes if segmentation.GetSegment(write.segmentID) is None]
        if recreated:
            editing.saveStateForUndo()  # undo removes the new segments too
        notes = []
        for write in recreated:
            name = self.names.get(write.segmentID, write.segmentID)
            write.segmentID = segmentation.AddEmptySegment("", name)
            text = tr(
                "Segment '{name}' was removed during the propagation: its slices went into a new segment '{name}'."
            )
            notes.append(text.format(name=name))
        writeSegmentMasks(editing, segmentationNode, geometry, writes, saveUndoState=not recreated)
        return notes


def summary(result: PropagationResult) -> str:
    """One line per object saying where and why propagation stopped, for the status label (the
    reasons are the engine's words)."""
    lines = []
    for outcome in result.objects.values():
        if outcome.absent:
            lines.append(tr("Nothing was found at the prompts; nothing was written."))
            continue
        stops = "; ".join(f"{stop.direction}: {stop.reason}" for stop in outcome.stops)
        done = tr("Segmented {count} slices ({first} to {last}).").format(
            count=len(outcome.slices), first=min(outcome.slices), last=max(outcome.slices)
        )
        lines.append(f"{done} {stops}".strip())
    if result.cancelled:
        lines.append(tr("Cancelled: the slices finished before the cancel were kept (one undo step)."))
    return "\n".join(lines)
