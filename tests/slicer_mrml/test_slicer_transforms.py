"""A segmentation under a parent transform: clicks, prompt markers, the preview
and the research inputs are placed through the transform, as the Segment Editor places them.

The transform is translated and rotated by 90 degrees about the R axis, so a view that shows one
axis of the volume shows another axis of the segmentation's own grid: ignoring the transform picks
the wrong slice direction, not just a shifted voxel.
"""

from __future__ import annotations

import numpy as np
import pytest
import slicer
import vtk
from mrml_fixtures import loadVolume, makeEditor, writeImage

from SAMSegmentLib.volume import Axis, Volume
from SAMSegmentMRML.geometry import (
    arrayFromImage,
    arrayToMatrix,
    arrayToRasMatrix,
    arrayToWorldMatrix,
    geometryOf,
    matrixToArray,
    volumeFromOrientedImage,
)
from SAMSegmentMRML.preview import PREVIEW_SEGMENT_ID, PreviewSegmentation
from SAMSegmentMRML.research_inputs import labelledCase, volumeAndMask
from SAMSegmentMRML.segment_writer import EditorLogicEditing, MaskWrite, writeSegmentMasks
from SAMSegmentMRML.slice_views import SlicePosition, slicePositionFromXy, sliceToXy

pytestmark = pytest.mark.slicer

# Translated, and rotated 90 degrees about R (anterior goes to superior).
TRANSFORM = np.array(
    [
        [1.0, 0.0, 0.0, 20.0],
        [0.0, 0.0, -1.0, -10.0],
        [0.0, 1.0, 0.0, 5.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)
OTHER_TRANSFORM = np.array(
    [
        [0.0, -1.0, 0.0, -4.0],
        [1.0, 0.0, 0.0, 12.0],
        [0.0, 0.0, 1.0, 3.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)
# Slicer's standard view orientations: columns are the view's x, y and normal in RAS.
VIEWS = {
    "Axial": np.array([[-1.0, 0, 0], [0, 1, 0], [0, 0, 1]]),
    "Sagittal": np.array([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]]),
    "Coronal": np.array([[-1.0, 0, 0], [0, 0, 1], [0, 1, 0]]),
}
VOXEL = np.array([9, 4, 7])  # i, j, k


def _linearTransform(scene, matrix: np.ndarray):
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    node.SetMatrixTransformToParent(arrayToMatrix(matrix))
    return node


def _volumeIjkToWorld(volumeNode) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    slicer.vtkSlicerSegmentEditorLogic.ImageToWorldMatrix(volumeNode, matrix)
    return matrixToArray(matrix)


@pytest.fixture
def volumeNode(scene, tmp_path):
    # Left-handed and anisotropic: Slicer flips k, so raw-index shortcuts would fail here.
    rng = np.random.default_rng(3)
    volume = Volume(
        rng.integers(0, 1000, (11, 13, 15)).astype(np.int16),
        spacing=(0.6, 0.8, 2.5),
        origin=(5.0, -7.0, 30.0),
        direction=np.diag([1.0, -1.0, 1.0]),
    )
    return loadVolume(scene, writeImage(tmp_path / "image.nrrd", volume))


@pytest.fixture(params=["registered study", "segmentation only"])
def editor(request, scene, volumeNode):
    """A segment editor whose segmentation is under TRANSFORM, on a grid that lies on the volume's
    voxels in world coordinates:
    - "registered study": the volume and the segmentation are both under the transform;
    - "segmentation only": the volume is not; the segmentation's reference geometry was taken from it
      through the transform (``SetReferenceImageGeometryParameterFromVolumeNode`` does so)."""
    transform = _linearTransform(scene, TRANSFORM)
    if request.param == "registered study":
        volumeNode.SetAndObserveTransformNodeID(transform.GetID())
    segmentationNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    segmentationNode.SetAndObserveTransformNodeID(transform.GetID())
    segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
    made = makeEditor(scene, volumeNode)
    made.node.SetAndObserveSegmentationNode(segmentationNode)
    made.segmentation = segmentationNode
    segmentationNode.CreateDefaultDisplayNodes()
    assert made.logic.ResetModifierLabelmapToDefault()
    assert made.logic.UpdateAlignedSourceVolume()
    made.node.SetSelectedSegmentID(made.addSegment("organ"))
    return made


def _sliceNode(scene, orientation: np.ndarray, centreRas: np.ndarray):
    sliceNode = scene.AddNewNodeByClass("vtkMRMLSliceNode")
    sliceNode.SetDimensions(300, 200, 1)
    sliceNode.SetFieldOfView(45.0, 30.0, 1.0)
    sliceToRas = np.eye(4)
    sliceToRas[:3, :3] = orientation
    sliceToRas[:3, 3] = centreRas
    sliceNode.GetSliceToRAS().DeepCopy(arrayToMatrix(sliceToRas))
    sliceNode.UpdateMatrices()
    return sliceNode


def _xyOfRas(sliceNode, ras: np.ndarray) -> tuple[float, float]:
    xyz = np.linalg.inv(matrixToArray(sliceNode.GetXYToRAS())) @ np.append(ras, 1.0)
    return float(xyz[0]), float(xyz[1])


def test_the_grid_lies_on_the_volume_in_world_only_through_the_transform(editor, volumeNode):
    aligned = editor.logic.GetAlignedSourceVolume()
    arrayToWorld = arrayToWorldMatrix(aligned, editor.segmentation)
    np.testing.assert_allclose(arrayToWorld, _volumeIjkToWorld(volumeNode), atol=1e-9)
    # The segmentation's own coordinates are not world coordinates: the old mapping is off.
    assert not np.allclose(arrayToRasMatrix(aligned), arrayToWorld, atol=1.0)
    # Same voxels as the volume (the Segment Editor resampled it through the transform).
    np.testing.assert_array_equal(arrayFromImage(aligned), slicer.util.arrayFromVolume(volumeNode))


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_a_click_lands_on_the_voxel_under_it_and_its_marker_is_drawn_there(scene, editor, volumeNode, view):
    aligned = editor.logic.GetAlignedSourceVolume()
    volume = volumeFromOrientedImage(aligned)
    arrayToWorld = arrayToWorldMatrix(aligned, editor.segmentation)
    voxelWorld = (arrayToWorld @ np.append(VOXEL, 1.0))[:3]
    sliceNode = _sliceNode(scene, VIEWS[view], voxelWorld)
    xy = _xyOfRas(sliceNode, voxelWorld + 0.25 * arrayToWorld[:3, 0])  # a quarter voxel off the centre

    position = slicePositionFromXy(sliceNode, xy, arrayToWorld, volume.array.shape)

    # Slicer's own conversion, through the segmentation's transform, finds the same voxel.
    ijk = [0, 0, 0]
    slicer.vtkSlicerSegmentEditorLogic.XyToIjk(
        list(xy), ijk, sliceNode, aligned, editor.segmentation.GetParentTransformNode()
    )
    assert ijk == list(VOXEL)
    # The view's normal is along this voxel axis in world coordinates.
    normal = VIEWS[view][:, 2]
    expectedAxis = {0: Axis.SAGITTAL, 1: Axis.CORONAL, 2: Axis.AXIAL}[
        int(np.argmax(np.abs(normal @ arrayToWorld[:3, :3])))
    ]
    assert position.axis == expectedAxis
    column, row = (round(value) for value in position.xy)
    shown = volume.slice_2d(position.axis, position.index)[row, column]
    assert shown == volume.array[tuple(VOXEL[::-1])] == slicer.util.arrayFromVolume(volumeNode)[tuple(VOXEL[::-1])]
    # The prompt marker is drawn where the user clicked, on the displayed slice.
    x, y, z = sliceToXy(sliceNode, position, arrayToWorld)
    assert (x, y, z) == pytest.approx((*xy, 0.0), abs=1e-6)
    otherSlice = SlicePosition(position.axis, position.index + 1, position.xy)
    assert abs(sliceToXy(sliceNode, otherSlice, arrayToWorld)[2]) > 0.5


def test_the_preview_is_under_the_segmentations_transform_and_shows_at_the_masked_voxels(scene, editor, volumeNode):
    aligned = editor.logic.GetAlignedSourceVolume()
    geometry = geometryOf(aligned)
    mask = np.zeros(volumeFromOrientedImage(aligned).array.shape, bool)
    mask[VOXEL[2], 2:9, 3:12] = True
    preview = PreviewSegmentation(scene, editor.segmentation)
    preview.showSlice(geometry, Axis.AXIAL, VOXEL[2], mask[VOXEL[2]], (1.0, 1.0, 0.0))

    assert preview.node.GetTransformNodeID() == editor.segmentation.GetTransformNodeID()
    np.testing.assert_array_equal(preview.previewArray(geometry), mask)
    # In world coordinates it covers the volume's voxels under the mask (Slicer's export resamples
    # through the transforms between the preview and the volume).
    shown = slicer.util.arrayFromSegmentBinaryLabelmap(preview.node, PREVIEW_SEGMENT_ID, volumeNode) > 0
    np.testing.assert_array_equal(shown, mask)

    # The user moves the segmentation: the next preview follows it; without a transform, none.
    moved = _linearTransform(scene, OTHER_TRANSFORM)
    editor.segmentation.SetAndObserveTransformNodeID(moved.GetID())
    preview.mergeSlices(geometry, Axis.AXIAL, [VOXEL[2]], mask, (1.0, 1.0, 0.0))
    assert preview.node.GetTransformNodeID() == moved.GetID()
    editor.segmentation.SetAndObserveTransformNodeID(None)
    preview.showSlice(geometry, Axis.AXIAL, VOXEL[2], mask[VOXEL[2]], (1.0, 1.0, 0.0))
    assert preview.node.GetTransformNodeID() is None
    preview.clear()


def _writeThroughEditor(editor, mask: np.ndarray) -> str:
    segmentID = editor.node.GetSelectedSegmentID()
    geometry = editor.logic.GetAlignedSourceVolume()
    writeSegmentMasks(EditorLogicEditing(editor.logic), editor.segmentation, geometry, [MaskWrite(segmentID, mask)])
    return segmentID


def test_research_inputs_read_segments_through_the_segmentations_transform(scene, editor, volumeNode):
    volumeArray = slicer.util.arrayFromVolume(volumeNode)
    organ = volumeArray > 700
    segmentID = _writeThroughEditor(editor, organ)  # segmented in the Segment Editor, on its grid

    volume, mask = volumeAndMask(volumeNode, editor.segmentation, segmentID)
    np.testing.assert_array_equal(volume.array, volumeArray)
    np.testing.assert_array_equal(mask, organ)
    case, _ = labelledCase(volumeNode, editor.segmentation, ["organ"])
    np.testing.assert_array_equal(case.labels, organ.astype(case.labels.dtype))

    # Another volume, elsewhere on its own transform but covering the same place: the segment is read
    # at its voxels' world positions (here the same voxels, so the same mask).
    otherVolume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    otherVolume.Copy(volumeNode)
    otherVolume.SetAndObserveImageData(volumeNode.GetImageData())
    elsewhere = _linearTransform(scene, OTHER_TRANSFORM)
    ijkToWorld = _volumeIjkToWorld(volumeNode)
    otherVolume.SetIJKToRASMatrix(arrayToMatrix(np.linalg.inv(OTHER_TRANSFORM) @ ijkToWorld))
    otherVolume.SetAndObserveTransformNodeID(elsewhere.GetID())
    np.testing.assert_allclose(_volumeIjkToWorld(otherVolume), ijkToWorld, atol=1e-9)
    np.testing.assert_array_equal(volumeAndMask(otherVolume, editor.segmentation, segmentID)[1], organ)


def test_a_segmentation_under_a_non_linear_transform_is_refused(scene, editor, volumeNode):
    segmentID = _writeThroughEditor(editor, slicer.util.arrayFromVolume(volumeNode) > 700)
    editor.segmentation.SetAndObserveTransformNodeID(scene.AddNewNodeByClass("vtkMRMLGridTransformNode").GetID())
    with pytest.raises(ValueError, match="non-linear transform: harden it"):
        volumeAndMask(volumeNode, editor.segmentation, segmentID)


def test_segment_everything_writes_on_the_transformed_segmentations_grid(editor, volumeNode):
    pytest.importorskip("torch")  # the research package imports it
    from SAMSegmentLib.research.everything import EverythingObject, EverythingResult
    from SAMSegmentMRML.everything_writer import addEverythingSegments

    aligned = editor.logic.GetAlignedSourceVolume()
    shape = volumeFromOrientedImage(aligned).array.shape
    structure = np.zeros(shape[1:], bool)
    structure[2:9, 3:12] = True
    result = EverythingResult(Axis.AXIAL, [EverythingObject({4: structure, 5: structure}, [0.9, 0.8])], {4: 1, 5: 1})
    (segmentID,) = addEverythingSegments(editor.segmentation, geometryOf(aligned), result)
    expected = np.zeros(shape, bool)
    expected[4:6] = structure
    # On the volume's voxels in world coordinates (Slicer's export resamples through the transforms).
    written = slicer.util.arrayFromSegmentBinaryLabelmap(editor.segmentation, segmentID, volumeNode) > 0
    np.testing.assert_array_equal(written, expected)
    np.testing.assert_array_equal(volumeAndMask(volumeNode, editor.segmentation, segmentID)[1], expected)
