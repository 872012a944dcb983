"""Show a proposed mask in the views without touching the user's segmentation: a separate,
unsaved segmentation node that the Segment Editor does not offer for editing.

Masks are on the edited segmentation's grid, in its coordinates (the aligned source volume's), so
the preview node sits under the same parent transform as the edited segmentation."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import slicer

from SAMSegmentLib.volume import Axis

from .geometry import arrayShape, croppedGeometry, labelmapLike, sliceLabelmap
from .segment_writer import MaskWrite, segmentMaskOnGrid

PREVIEW_NODE_NAME = "SAM preview"
PREVIEW_SEGMENT_ID = "preview"
PREVIEW_OPACITY = 0.6
Color = tuple[float, float, float]
REPLACE = slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE
MERGE = slicer.vtkSlicerSegmentationsModuleLogic.MODE_MERGE_MAX


class PreviewSegmentation:
    def __init__(
        self, scene: slicer.vtkMRMLScene, segmentationNode: slicer.vtkMRMLSegmentationNode | None = None
    ) -> None:
        """``segmentationNode`` is the edited segmentation: the preview follows its parent transform
        (without it the preview is placed in world coordinates)."""
        self.scene = scene
        self.segmentationNode = segmentationNode
        self.node: slicer.vtkMRMLSegmentationNode | None = None

    def showSlice(
        self, geometry: slicer.vtkOrientedImageData, axis: Axis, index: int, mask: np.ndarray, color: Color
    ) -> None:
        """Show the 2D ``mask`` on slice ``index`` along ``axis`` instead of what was shown before."""
        self._set(sliceLabelmap(geometry, axis, index, mask), geometry, color, REPLACE)

    def mergeSlices(
        self,
        geometry: slicer.vtkOrientedImageData,
        axis: Axis,
        indices: Collection[int],
        masks: np.ndarray,
        color: Color,
    ) -> None:
        """Add slices ``indices`` along ``axis`` of ``masks`` (bool ``[k, j, i]`` on ``geometry``'s
        grid, e.g. the newly propagated slices) to what is shown, in one update of the slab that
        holds them: the work is that slab's, whatever the volume's size."""
        write = MaskWrite("", masks, axis, sorted(indices))
        extent = write.extent(geometry)
        slab = croppedGeometry(geometry, extent)
        first = min(indices)
        crop = [slice(None)] * 3
        crop[axis.array_axis] = slice(first, max(indices) + 1)
        shown = masks[tuple(crop)] & write.region(arrayShape(slab), first)
        self._set(labelmapLike(slab, shown), geometry, color, MERGE)

    def _set(
        self,
        labelmap: slicer.vtkOrientedImageData,
        geometry: slicer.vtkOrientedImageData,
        color: Color,
        mode: int,
    ) -> None:
        node = self._node(geometry)
        self._followTransform(node)
        slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(labelmap, node, PREVIEW_SEGMENT_ID, mode)
        node.GetSegmentation().GetSegment(PREVIEW_SEGMENT_ID).SetColor(*color)

    def _followTransform(self, node: slicer.vtkMRMLSegmentationNode) -> None:
        """Put the preview under the edited segmentation's parent transform (checked on every update,
        so a transform chosen while segmenting is followed from the next preview on)."""
        transformID = self.segmentationNode.GetTransformNodeID() if self.segmentationNode is not None else None
        if node.GetTransformNodeID() != transformID:
            node.SetAndObserveTransformNodeID(transformID)

    def previewArray(self, geometry: slicer.vtkOrientedImageData) -> np.ndarray:
        """What the preview shows, on ``geometry``'s grid (all False when nothing is shown)."""
        if self.node is None:
            return np.zeros(arrayShape(geometry), bool)
        return segmentMaskOnGrid(self.node, PREVIEW_SEGMENT_ID, geometry)

    def clear(self) -> None:
        if self.node is not None and self.scene.IsNodePresent(self.node):
            self.scene.RemoveNode(self.node)
        self.node = None

    def _node(self, geometry: slicer.vtkOrientedImageData) -> slicer.vtkMRMLSegmentationNode:
        if self.node is not None and self.scene.IsNodePresent(self.node):
            return self.node
        node = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", PREVIEW_NODE_NAME)
        node.SetHideFromEditors(True)
        node.SetSaveWithScene(False)
        node.CreateDefaultDisplayNodes()
        node.GetDisplayNode().SetOpacity(PREVIEW_OPACITY)
        node.GetDisplayNode().SetVisibility3D(False)
        parameter = slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
        node.GetSegmentation().SetConversionParameter(
            parameter, slicer.vtkSegmentationConverter.SerializeImageGeometry(geometry)
        )
        node.GetSegmentation().AddEmptySegment(PREVIEW_SEGMENT_ID, PREVIEW_SEGMENT_ID)
        self.node = node
        return node
