"""What the research tools take from the scene: volume nodes as engine volumes, segments as masks on
their grid, and labelled cases for fine-tuning. Copies only, safe to hand to the inference worker.

Volumes are taken in world coordinates (linear parent transforms applied), and segments are read
at the world positions of the volume's voxels: a segmentation under a linear transform is read
through it (the volume's grid is expressed in the segmentation's coordinates, as the Segment Editor
resamples its source volume, vtkSlicerSegmentEditorLogic::UpdateAlignedSourceVolume). Only a
non-linear transform is refused: harden it first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import slicer

from SAMSegmentLib.datasets import LabelledCase
from SAMSegmentLib.volume import Volume

from .geometry import gridInNodeCoordinates, orientedImageFromVolumeNode, volumeFromOrientedImage
from .segment_writer import segmentMaskOnGrid


def segmentIdByName(segmentationNode: slicer.vtkMRMLSegmentationNode, name: str) -> str:
    segmentID = segmentationNode.GetSegmentation().GetSegmentIdBySegmentName(name)
    if not segmentID:
        raise KeyError(f"'{segmentationNode.GetName()}' has no segment named '{name}'.")
    return segmentID


def volumeAndMask(
    volumeNode: slicer.vtkMRMLScalarVolumeNode,
    segmentationNode: slicer.vtkMRMLSegmentationNode,
    segmentID: str,
    modality: str = "",
) -> tuple[Volume, np.ndarray]:
    """The volume as the engine's Volume and the segment as a bool ``[k, j, i]`` mask on its grid."""
    image = orientedImageFromVolumeNode(volumeNode)
    return volumeFromOrientedImage(image, modality), _segmentOn(segmentationNode, segmentID, image)


def labelledCase(
    volumeNode: slicer.vtkMRMLScalarVolumeNode,
    segmentationNode: slicer.vtkMRMLSegmentationNode,
    segmentNames: Sequence[str],
    modality: str = "",
) -> tuple[LabelledCase, dict[str, str]]:
    """A fine-tuning case: the volume, the named segments as labels 1, 2, ... (a later segment wins
    where two overlap), and what the case is for the model's provenance file. Segments that are
    empty on this volume are left out; a case with none of them is refused."""
    if not segmentNames:
        raise ValueError("Choose at least one segment to train on.")
    image = orientedImageFromVolumeNode(volumeNode)
    volume = volumeFromOrientedImage(image, modality)
    labels = np.zeros(volume.array.shape, np.uint8 if len(segmentNames) < 256 else np.uint16)
    names: dict[int, str] = {}
    for value, name in enumerate(segmentNames, start=1):
        mask = _segmentOn(segmentationNode, segmentIdByName(segmentationNode, name), image)
        if mask.any():
            labels[mask] = value
            names[value] = name
    if not names:
        raise ValueError(
            f"None of {', '.join(segmentNames)} has any voxel on '{volumeNode.GetName()}' in "
            f"'{segmentationNode.GetName()}'."
        )
    record = {
        "volume": volumeNode.GetName(),
        "segmentation": segmentationNode.GetName(),
        "segments": ", ".join(names.values()),
    }
    storageNode = volumeNode.GetStorageNode()
    if storageNode is not None and storageNode.GetFileName():
        record["image"] = storageNode.GetFileName()
    return LabelledCase(volume, labels, names), record


def _segmentOn(
    segmentationNode: slicer.vtkMRMLSegmentationNode, segmentID: str, image: slicer.vtkOrientedImageData
) -> np.ndarray:
    """The segment on ``image``'s grid (in world RAS), through the segmentation's parent transforms."""
    return segmentMaskOnGrid(segmentationNode, segmentID, gridInNodeCoordinates(image, segmentationNode))
