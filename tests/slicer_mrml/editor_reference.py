"""Test support: what the Segment Editor itself computes as its working grid: the segmentation's
reference geometry, and the source volume resampled onto it when the two differ."""

from __future__ import annotations

import slicer

from SAMSegmentMRML.geometry import orientedImageFromVolumeNode


def referenceGeometryString(segmentationNode: slicer.vtkMRMLSegmentationNode) -> str:
    parameter = slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    return segmentationNode.GetSegmentation().GetConversionParameter(parameter)


def referenceGeometryImage(segmentationNode: slicer.vtkMRMLSegmentationNode) -> slicer.vtkOrientedImageData | None:
    """An image (no voxels allocated) with the segmentation's reference geometry, or None if unset."""
    geometry = referenceGeometryString(segmentationNode)
    if not geometry:
        return None
    image = slicer.vtkOrientedImageData()
    if not slicer.vtkSegmentationConverter.DeserializeImageGeometry(geometry, image, False):
        raise ValueError(f"The segmentation's reference geometry '{geometry}' cannot be read.")
    return image


def ensureReferenceGeometry(
    segmentationNode: slicer.vtkMRMLSegmentationNode, volumeNode: slicer.vtkMRMLScalarVolumeNode
) -> None:
    """Give a segmentation without a reference geometry the volume's, as the Segment Editor does."""
    if not referenceGeometryString(segmentationNode):
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)


def alignedSourceImage(
    volumeNode: slicer.vtkMRMLScalarVolumeNode, segmentationNode: slicer.vtkMRMLSegmentationNode
) -> slicer.vtkOrientedImageData:
    """The source volume on the segmentation's reference grid (linear interpolation where it must be
    resampled); the volume itself when the grids already agree."""
    source = orientedImageFromVolumeNode(volumeNode)
    reference = referenceGeometryImage(segmentationNode)
    if reference is None:
        return source
    sameGrid = slicer.vtkOrientedImageDataResample.DoGeometriesMatch(source, reference) and (
        source.GetExtent() == reference.GetExtent()
    )
    if sameGrid:
        return source
    aligned = slicer.vtkOrientedImageData()
    if not slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
        source, reference, aligned, True
    ):
        raise ValueError("The source volume could not be resampled onto the segmentation's geometry.")
    return aligned
