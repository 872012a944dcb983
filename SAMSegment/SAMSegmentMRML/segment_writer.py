"""Write engine masks into segments through the Segment Editor's own modification logic, so the
editor's masking (editable area, intensity range) and overwrite settings apply and every write
is one undo step.

A mask written on a slice replaces the part of the segment it lands on, not the whole slice: a
segment may hold several objects (lesions, both kidneys), and segmenting one must not erase the
others where they share slices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar, Protocol

import numpy as np
import slicer
from scipy import ndimage  # bundled with Slicer (Slicer's SuperBuild/External_python-scipy.cmake)

from SAMSegmentLib.volume import Axis

from .geometry import arrayFromImage, arrayShape, croppedGeometry, labelmapLike, occupiedExtent


class Modification(Enum):
    ADD = "add"
    REMOVE = "remove"


class SegmentEditing(Protocol):
    """What writing needs from a segment editor: the effect (in Slicer) or the logic (headless)."""

    def saveStateForUndo(self) -> None: ...

    def editorNode(self) -> slicer.vtkMRMLSegmentEditorNode:
        """The editor's parameters: selected segment, editable area, overwrite."""

    def modifySegment(
        self,
        segmentationNode: slicer.vtkMRMLSegmentationNode,
        segmentID: str,
        labelmap: slicer.vtkOrientedImageData,
        modification: Modification,
        extent: tuple[int, int, int, int, int, int],
    ) -> None:
        """Modify the selected segment (``segmentID``) through the editor's masking."""


class EditorLogicEditing:
    """SegmentEditing through a ``vtkSlicerSegmentEditorLogic`` (the logic the Segment Editor
    widget itself uses, so the result is the same as an effect's)."""

    _MODES: ClassVar[dict] = {
        Modification.ADD: slicer.vtkSlicerSegmentEditorLogic.ModificationModeAdd,
        Modification.REMOVE: slicer.vtkSlicerSegmentEditorLogic.ModificationModeRemove,
    }

    def __init__(self, logic: slicer.vtkSlicerSegmentEditorLogic) -> None:
        self.logic = logic

    def saveStateForUndo(self) -> None:
        self.logic.SaveStateForUndo()

    def editorNode(self) -> slicer.vtkMRMLSegmentEditorNode:
        return self.logic.GetSegmentEditorNode()

    def modifySegment(self, segmentationNode, segmentID, labelmap, modification, extent) -> None:
        self.logic.ModifySegmentByLabelmap(
            segmentationNode, segmentID, labelmap, self._MODES[modification], extent, True, False
        )


@dataclass
class MaskWrite:
    """Write ``mask`` ``[k, j, i]`` into ``segmentID`` on ``indices`` (slices along ``axis``): on each
    of those slices the segment's parts that the mask overlaps are replaced by it, and its other
    parts are kept (``replacedParts``), unless ``clicks`` (the ``[k, j, i]`` voxels of the user's
    clicks) land on them: a negative click on a stray part removes it. With ``axis`` None the
    segment becomes ``mask`` on the whole grid. Only the written slices of ``mask`` are read, so a
    mask made with ``np.zeros`` (memory the system maps only when touched) costs what is written."""

    segmentID: str
    mask: np.ndarray
    axis: Axis | None = None
    indices: Sequence[int] = ()
    clicks: Sequence[tuple[int, int, int]] = ()

    def extent(self, geometry: slicer.vtkOrientedImageData) -> tuple[int, int, int, int, int, int]:
        """VTK extent (in ``geometry``'s indices) of the slab holding the written slices."""
        extent = list(geometry.GetExtent())
        if self.axis is not None:
            vtkAxis = 2 - self.axis.array_axis  # arrays are [k, j, i], VTK extents (i0, i1, j0, j1, k0, k1)
            start = extent[2 * vtkAxis]
            extent[2 * vtkAxis : 2 * vtkAxis + 2] = start + min(self.indices), start + max(self.indices)
        return tuple(extent)  # type: ignore[return-value]

    def region(self, shape: tuple[int, int, int], first: int = 0) -> np.ndarray:
        """Bool ``[k, j, i]`` of ``shape``: the voxels of the written slices, in a slab whose first
        slice along ``axis`` is slice ``first``."""
        if self.axis is None:
            return np.ones(shape, bool)
        region = np.zeros(shape, bool)
        indexer: list[object] = [slice(None)] * 3
        indexer[self.axis.array_axis] = [index - first for index in self.indices]
        region[tuple(indexer)] = True
        return region

    def touched(self, slabMask: np.ndarray, crop: tuple[slice, slice, slice]) -> np.ndarray:
        """Bool like ``slabMask`` (the mask cut to ``crop``): the mask and the clicks on the slab."""
        touched = slabMask.copy()
        for voxel in self.clicks:
            inSlab = tuple(index - part.start for index, part in zip(voxel, crop, strict=True))
            if all(0 <= index < size for index, size in zip(inSlab, touched.shape, strict=True)):
                touched[inSlab] = True
        return touched


def segmentMaskOnGrid(
    segmentationNode: slicer.vtkMRMLSegmentationNode, segmentID: str, geometry: slicer.vtkOrientedImageData
) -> np.ndarray:
    """The segment as a bool ``[k, j, i]`` array on ``geometry``'s grid (nearest-neighbour)."""
    shape = arrayShape(geometry)
    segment = segmentationNode.GetSegmentation().GetSegment(segmentID)
    if segment is None:
        raise KeyError(f"The segmentation has no segment '{segmentID}'.")
    labelmap = slicer.vtkOrientedImageData()
    found = slicer.vtkSlicerSegmentationsModuleLogic.GetSegmentBinaryLabelmapRepresentation(
        segmentationNode, segmentID, labelmap, False
    )
    extent = labelmap.GetExtent()
    if not found or extent[0] > extent[1] or extent[2] > extent[3] or extent[4] > extent[5]:
        return np.zeros(shape, bool)
    onGrid = slicer.vtkOrientedImageData()
    if not slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
        labelmap, geometry, onGrid
    ):
        raise ValueError(f"Segment '{segmentID}' could not be resampled onto the segmentation grid.")
    # Segments share labelmap layers, each with its own label value.
    return arrayFromImage(onGrid) == segment.GetLabelValue()


def replacedParts(segment: np.ndarray, mask: np.ndarray, axis: Axis) -> np.ndarray:
    """The parts of ``segment`` (bool ``[k, j, i]``) that ``mask`` touches, a part being a region
    connected within a slice along ``axis`` (8-neighbours): the old outline of the object being
    written, leaks joined to it included, but not another object of the segment on that slice."""
    inPlane = np.ones((3, 3, 3), bool)
    across = [slice(None)] * 3
    for side in (0, 2):
        across[axis.array_axis] = slice(side, side + 1)
        inPlane[tuple(across)] = False
    replaced = np.zeros_like(segment)
    if not (segment & mask).any():
        return replaced
    box = ndimage.find_objects(segment.astype(np.uint8))[0]  # labelling costs the segment's extent only
    parts, _ = ndimage.label(segment[box], inPlane)
    overlapped = np.unique(parts[mask[box] & segment[box]])
    replaced[box] = np.isin(parts, overlapped)
    return replaced


def writeSegmentMasks(
    editing: SegmentEditing,
    segmentationNode: slicer.vtkMRMLSegmentationNode,
    geometry: slicer.vtkOrientedImageData,
    writes: Sequence[MaskWrite],
    saveUndoState: bool = True,
) -> None:
    """Apply ``writes`` as one undo step (``saveUndoState`` False: the caller saved it already): on
    each write's slices the segment's parts its mask overlaps become the mask, within what the
    editor's masking allows; elsewhere the segment is left as it was, and no other segment changes
    except as the editor's overwrite setting says for the segment's new voxels.

    The editor computes its editable area relative to the selected segment, so each written
    segment is selected while it is written, and the user's selection is restored after.
    Everything is checked and prepared before the undo state is saved, so bad input changes
    nothing.
    """
    for write in writes:
        if segmentationNode.GetSegmentation().GetSegment(write.segmentID) is None:
            raise KeyError(f"The segmentation has no segment '{write.segmentID}'.")
    shape = arrayShape(geometry)
    steps = []
    for write in writes:
        if write.axis is not None and not write.indices:
            continue
        mask = np.asarray(write.mask)
        if mask.shape != shape:
            raise ValueError(f"The mask for '{write.segmentID}' has shape {mask.shape}, the grid {shape}.")
        extent = write.extent(geometry)
        slab = croppedGeometry(geometry, extent)
        crop = tuple(
            slice(
                extent[2 * vtkAxis] - geometry.GetExtent()[2 * vtkAxis],
                extent[2 * vtkAxis + 1] - geometry.GetExtent()[2 * vtkAxis] + 1,
            )
            for vtkAxis in (2, 1, 0)
        )
        slabMask = mask[crop].astype(bool, copy=False)
        first = crop[write.axis.array_axis].start if write.axis is not None else 0
        region = write.region(slabMask.shape, first)
        current = segmentMaskOnGrid(segmentationNode, write.segmentID, slab)
        replaced = current & region
        if write.axis is not None:
            replaced = replacedParts(replaced, write.touched(slabMask, crop) & region, write.axis)
        for modification, voxels in (
            (Modification.REMOVE, replaced & ~slabMask),
            (Modification.ADD, slabMask & region),
        ):
            if voxels.any():
                # Only the voxels' bounding box goes to the editor: its work grows with the extent.
                box = occupiedExtent(voxels, slab)
                steps.append((write.segmentID, labelmapLike(slab, voxels, box), modification, box))
    if not steps:
        return
    if saveUndoState:
        editing.saveStateForUndo()
    node = editing.editorNode()
    selected, maskMode = node.GetSelectedSegmentID(), node.GetMaskMode()
    try:
        for segmentID, labelmap, modification, extent in steps:
            node.SetSelectedSegmentID(segmentID)
            node.SetMaskMode(_maskModeFor(modification, maskMode))
            editing.modifySegment(segmentationNode, segmentID, labelmap, modification, extent)
    finally:
        node.SetSelectedSegmentID(selected)
        node.SetMaskMode(maskMode)


def _maskModeFor(modification: Modification, maskMode: int) -> int:
    """The editable area for removing the segment's old voxels: with the area "inside one segment",
    Slicer gives removed voxels to that segment (vtkSlicerSegmentEditorLogic::ModifySegmentByLabelmap,
    its rule for splitting a segment by erasing), which would change another segment. There Slicer
    counts the edited segment's own voxels as editable anyway, so removing them with the area
    "everywhere" removes the same voxels and gives nothing away. (The intensity range still applies.)"""
    if (
        modification is Modification.REMOVE
        and maskMode == slicer.vtkMRMLSegmentationNode.EditAllowedInsideSingleSegment
    ):
        return slicer.vtkMRMLSegmentationNode.EditAllowedEverywhere
    return maskMode
