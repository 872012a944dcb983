"""Write a "segment everything" result into a segmentation: each structure found becomes a new
segment, all in one undo step, and either every segment is added or none is.

The new segments are written whole: the Segment Editor's masking settings are about editing one
existing segment and do not apply. Overlapping structures stay overlapping (Slicer keeps them in
separate layers). Only the slab's slices are copied, so a one-slice result costs one slice per
structure however large the volume.
"""

from __future__ import annotations

import colorsys
from typing import TYPE_CHECKING

import numpy as np
import slicer

from SAMSegmentLib.volume import Axis, put_slice

from .geometry import arrayShape, geometryOf, labelmapLike
from .segment_writer import SegmentEditing

if TYPE_CHECKING:  # the research package imports torch, which may not be installed yet
    from SAMSegmentLib.research.types import EverythingObject, EverythingResult

# One label layer of a .seg.nrrd holds 255 segments; more would not help anyone either.
MAX_SEGMENTS = 255
_GOLDEN_RATIO = 0.618033988749895  # hue step that keeps successive colours far apart


def slabGeometry(
    geometry: slicer.vtkOrientedImageData, axis: Axis, first: int, last: int
) -> slicer.vtkOrientedImageData:
    """``geometry``'s grid cut to slices ``first``..``last`` (array indices) along ``axis``."""
    extent = list(geometry.GetExtent())
    dimension = 2 - Axis(axis).array_axis  # VTK orders extents i, j, k; arrays are [k, j, i]
    start = extent[2 * dimension]
    extent[2 * dimension], extent[2 * dimension + 1] = start + first, start + last
    slab = geometryOf(geometry)
    slab.SetExtent(extent)
    return slab


def segmentColor(number: int) -> tuple[float, float, float]:
    """A bright colour for the ``number``-th new segment, distinct from its neighbours in the list."""
    return colorsys.hsv_to_rgb((number * _GOLDEN_RATIO) % 1.0, 0.65, 0.95)


def segmentName(number: int, item: EverythingObject) -> str:
    return f"Structure {number} (IoU {item.score:.2f})"


def addEverythingSegments(
    segmentationNode: slicer.vtkMRMLSegmentationNode,
    geometry: slicer.vtkOrientedImageData,
    result: EverythingResult,
    editing: SegmentEditing | None = None,
    limit: int = MAX_SEGMENTS,
) -> list[str]:
    """Add the ``limit`` best structures of ``result`` (computed on ``geometry``'s grid) as new
    segments; their IDs, best first. With ``editing`` the addition is one undo step of that editor."""
    objects = result.objects[:limit]
    if not objects:
        return []
    axis = Axis(result.axis)
    indices = sorted({index for item in objects for index in item.masks})
    first, last = indices[0], indices[-1]
    count = arrayShape(geometry)[axis.array_axis]
    if first < 0 or last >= count:
        raise ValueError(f"The result has slices {first}..{last}; the grid has 0 to {count - 1} along that axis.")
    slab = slabGeometry(geometry, axis, first, last)
    labelmaps = [_slabLabelmap(slab, axis, first, item) for item in objects]  # all made before any is written
    if editing is not None:
        editing.saveStateForUndo()
    segmentation = segmentationNode.GetSegmentation()
    added: list[str] = []
    wasModifying = segmentationNode.StartModify()
    try:
        for number, (item, labelmap) in enumerate(zip(objects, labelmaps), start=1):
            segmentID = segmentation.AddEmptySegment("", segmentName(number, item), segmentColor(number))
            if not segmentID:
                raise RuntimeError("The segmentation refused a new segment.")
            added.append(segmentID)
            slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
                labelmap,
                segmentationNode,
                segmentID,
                slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE,
                labelmap.GetExtent(),
            )
    except Exception:
        for segmentID in added:  # never leave part of the result behind
            segmentation.RemoveSegment(segmentID)
        raise
    finally:
        segmentationNode.EndModify(wasModifying)
    return added


def _slabLabelmap(slab: slicer.vtkOrientedImageData, axis: Axis, first: int, item: EverythingObject):
    mask = np.zeros(arrayShape(slab), bool)
    for index, sliceMask in item.masks.items():
        put_slice(mask, axis, index - first, np.asarray(sliceMask, bool))
    return labelmapLike(slab, mask)
