"""Scene nodes for the research tools' results: prior maps as scalar volumes on their input's
geometry, and a registration as a linear transform node."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import slicer

from SAMSegmentLib.research.registration import slicer_to_parent_matrix

from .geometry import arrayToMatrix, parentToWorldMatrix


def addVolumeLike(
    scene: slicer.vtkMRMLScene, like: slicer.vtkMRMLScalarVolumeNode, array: np.ndarray, name: str
) -> slicer.vtkMRMLScalarVolumeNode:
    """A new scalar volume holding ``array`` ``[k, j, i]`` exactly where ``like`` is: same IJK-to-RAS
    matrix, same parent transform."""
    dimensions = like.GetImageData().GetDimensions() if like.GetImageData() is not None else None
    if dimensions is None or tuple(array.shape) != tuple(reversed(dimensions)):
        raise ValueError(f"An array of shape {array.shape} does not fit '{like.GetName()}' ({dimensions}).")
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", scene.GenerateUniqueName(name))
    node.CopyOrientation(like)
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(array))
    node.SetAndObserveTransformNodeID(like.GetTransformNodeID())
    node.CreateDefaultDisplayNodes()
    return node


def addPriorMapVolumes(
    scene: slicer.vtkMRMLScene, volumeNode: slicer.vtkMRMLScalarVolumeNode, prior: np.ndarray, boundary: np.ndarray
) -> tuple[slicer.vtkMRMLScalarVolumeNode, slicer.vtkMRMLScalarVolumeNode]:
    """The segmentation prior and the boundary prior of ``volumeNode`` as two volumes over it."""
    baseName = volumeNode.GetName()
    return (
        addVolumeLike(scene, volumeNode, prior.astype(np.float32), f"{baseName} SAM prior"),
        addVolumeLike(scene, volumeNode, boundary.astype(np.float32), f"{baseName} SAM boundary"),
    )


def addRegistrationTransform(
    scene: slicer.vtkMRMLScene,
    movingNode: slicer.vtkMRMLScalarVolumeNode,
    transform: sitk.Transform,
    name: str,
    placeMoving: bool = True,
) -> slicer.vtkMRMLLinearTransformNode:
    """A linear transform node that lines the moving volume up with the fixed one when the moving
    volume is placed directly under it (with ``placeMoving`` this is done, replacing the moving
    volume's earlier transform).

    ``transform`` is a registration of the two volumes in world coordinates (see research_inputs),
    so the transform the moving volume was under is part of the new node's matrix.
    """
    toParent = slicer_to_parent_matrix(transform) @ parentToWorldMatrix(movingNode)  # may refuse: nothing added yet
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", scene.GenerateUniqueName(name))
    node.SetMatrixTransformToParent(arrayToMatrix(toParent))
    if placeMoving:
        movingNode.SetAndObserveTransformNodeID(node.GetID())
    return node
