"""Helpers for the Slicer glue tests: images written with SimpleITK and loaded with Slicer's
reader, and a segment editor set up the way the Segment Editor widget sets it up.

(This folder is not named ``slicer``: the ``slicer`` package extends its namespace with every
``slicer`` folder on ``sys.path`` and would import the tests as Slicer modules.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer

from SAMSegmentLib.volume import Volume


def writeImage(path: Path, volume: Volume) -> Path:
    """Write ``volume`` with SimpleITK (LPS geometry) so Slicer's reader can load it."""
    image = sitk.GetImageFromArray(volume.array)
    image.SetSpacing(volume.spacing)
    image.SetOrigin(volume.origin)
    image.SetDirection(tuple(np.asarray(volume.direction).reshape(-1)))
    sitk.WriteImage(image, str(path))
    return path


def loadVolume(scene, path: Path):
    """Load an image file with Slicer's own volume storage node."""
    volumeNode = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    storageNode = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storageNode.SetFileName(str(path))
    assert storageNode.ReadData(volumeNode), f"Slicer could not read {path}"
    volumeNode.SetAndObserveStorageNodeID(storageNode.GetID())
    return volumeNode


@dataclass
class Editor:
    """A segment editor: parameter node, segmentation, source volume and the editor logic."""

    scene: object
    node: object
    segmentation: object
    volume: object
    logic: object

    def addSegment(self, name: str) -> str:
        segmentID = self.logic.AddEmptySegment()
        self.segmentation.GetSegmentation().GetSegment(segmentID).SetName(name)
        return segmentID


def makeEditor(scene, volumeNode, referenceVolumeNode=None) -> Editor:
    """Set up the editor logic on ``volumeNode``; the segmentation's reference geometry comes from
    ``referenceVolumeNode`` when given (a segmentation made on another grid)."""
    segmentationNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    segmentationNode.CreateDefaultDisplayNodes()
    if referenceVolumeNode is not None:
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(referenceVolumeNode)
    editorNode = scene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
    editorNode.SetAndObserveSegmentationNode(segmentationNode)
    logic = slicer.vtkSlicerSegmentEditorLogic()
    logic.SetMRMLScene(scene)
    logic.SetSegmentEditorNode(editorNode)
    logic.SetSourceVolumeNode(volumeNode)
    assert logic.TrivialSetSourceRepresentationToBinaryLabelmap()
    assert logic.ResetModifierLabelmapToDefault()
    assert logic.UpdateAlignedSourceVolume()
    return Editor(scene, editorNode, segmentationNode, volumeNode, logic)
