"""Clicks in slice views map to the right axis, slice and in-slice position of the volume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import slicer
from mrml_fixtures import loadVolume, writeImage

from SAMSegmentLib.volume import Axis, Volume, ijk_to_slice
from SAMSegmentMRML.geometry import arrayToMatrix, arrayToRasMatrix, orientedImageFromVolumeNode, volumeFromVolumeNode
from SAMSegmentMRML.slice_views import (
    ObliqueSliceError,
    OutsideVolumeError,
    SlicePosition,
    slicePositionFromXy,
    sliceToXy,
    sliceViewAxis,
)

pytestmark = pytest.mark.slicer

# Slicer's standard view orientations: columns are the view's x, y and normal in RAS.
VIEWS = {
    "Axial": np.array([[-1.0, 0, 0], [0, 1, 0], [0, 0, 1]]),
    "Sagittal": np.array([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]]),
    "Coronal": np.array([[-1.0, 0, 0], [0, 0, 1], [0, 1, 0]]),
}
# For a volume in LPS-aligned orientation, the view that shows each engine axis.
EXPECTED_AXIS = {"Axial": Axis.AXIAL, "Sagittal": Axis.SAGITTAL, "Coronal": Axis.CORONAL}


@pytest.fixture
def volumeNode(scene, tmp_path):
    # Left-handed and anisotropic: Slicer flips k, so raw-index shortcuts would fail here.
    rng = np.random.default_rng(2)
    volume = Volume(
        rng.integers(0, 1000, (11, 13, 15)).astype(np.int16),
        spacing=(0.6, 0.8, 2.5),
        origin=(5.0, -7.0, 30.0),
        direction=np.diag([1.0, -1.0, 1.0]),
    )
    return loadVolume(scene, writeImage(tmp_path / "image.nrrd", volume))


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
    xyToRas = np.array([[sliceNode.GetXYToRAS().GetElement(r, c) for c in range(4)] for r in range(4)])
    xyz = np.linalg.inv(xyToRas) @ np.append(ras, 1.0)
    return float(xyz[0]), float(xyz[1])


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_click_on_a_voxel_maps_to_its_slice_and_position(scene, volumeNode, view):
    volume = volumeFromVolumeNode(volumeNode)
    arrayToRas = arrayToRasMatrix(orientedImageFromVolumeNode(volumeNode))
    voxel = np.array([9, 4, 7])  # i, j, k
    voxelRas = (arrayToRas @ np.append(voxel, 1.0))[:3]
    sliceNode = _sliceNode(scene, VIEWS[view], voxelRas)
    # A quarter voxel off the centre still picks that voxel.
    xy = _xyOfRas(sliceNode, voxelRas + 0.25 * arrayToRas[:3, 0])

    position = slicePositionFromXy(sliceNode, xy, arrayToRas, volume.array.shape)

    assert position.axis == EXPECTED_AXIS[view]
    index, expectedXy = ijk_to_slice(position.axis, tuple(voxel + np.array([0.25, 0.0, 0.0])))
    assert position.index == index
    assert position.xy == pytest.approx(expectedXy, abs=1e-6)
    column, row = (round(value) for value in position.xy)
    assert volume.slice_2d(position.axis, position.index)[row, column] == volume.array[voxel[2], voxel[1], voxel[0]]
    # Slicer's own conversion agrees on the voxel.
    ijk = [0, 0, 0]
    slicer.vtkSlicerSegmentEditorLogic.XyToIjk(list(xy), ijk, sliceNode, orientedImageFromVolumeNode(volumeNode))
    assert ijk == list(voxel)


def test_prompt_positions_map_back_to_the_view(scene, volumeNode):
    arrayToRas = arrayToRasMatrix(orientedImageFromVolumeNode(volumeNode))
    sliceNode = _sliceNode(scene, VIEWS["Coronal"], (arrayToRas @ [3, 6, 2, 1])[:3])
    shape = volumeFromVolumeNode(volumeNode).array.shape
    position = slicePositionFromXy(sliceNode, (140.0, 90.0), arrayToRas, shape)
    x, y, z = sliceToXy(sliceNode, position, arrayToRas)
    assert (x, y) == pytest.approx((140.0, 90.0), abs=1e-6)
    assert z == pytest.approx(0.0, abs=1e-6)
    otherSlice = SlicePosition(position.axis, position.index + 2, position.xy)
    assert abs(sliceToXy(sliceNode, otherSlice, arrayToRas)[2]) > 0.5


def test_rotated_view_is_refused_with_a_message(scene, volumeNode):
    arrayToRas = arrayToRasMatrix(orientedImageFromVolumeNode(volumeNode))
    angle = math.radians(10)
    tilt = np.array([[1, 0, 0], [0, math.cos(angle), -math.sin(angle)], [0, math.sin(angle), math.cos(angle)]])
    sliceNode = _sliceNode(scene, tilt @ VIEWS["Axial"], (arrayToRas @ [7, 6, 5, 1])[:3])
    with pytest.raises(ObliqueSliceError, match=r"rotated 10\.0 degrees"):
        sliceViewAxis(sliceNode, arrayToRas)
    with pytest.raises(ObliqueSliceError):
        slicePositionFromXy(sliceNode, (150.0, 100.0), arrayToRas, (11, 13, 15))


def test_view_aligned_with_an_oblique_volume_is_accepted(scene):
    # Tilted about the left-right axis, as a gantry-tilted CT.
    rotation = np.array([[1.0, 0.0, 0.0], [0.0, 0.8, -0.6], [0.0, 0.6, 0.8]])
    arrayToRas = np.eye(4)
    arrayToRas[:3, :3] = rotation @ np.diag([0.5, 0.5, 2.0])
    sliceNode = _sliceNode(scene, rotation, np.zeros(3))
    assert sliceViewAxis(sliceNode, arrayToRas) == Axis.AXIAL
    # An in-plane rotation of the view does not matter: it still shows the volume's slices.
    inPlane = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert sliceViewAxis(_sliceNode(scene, rotation @ inPlane, np.zeros(3)), arrayToRas) == Axis.AXIAL
    with pytest.raises(ObliqueSliceError, match=r"36\.9 degrees"):
        sliceViewAxis(_sliceNode(scene, VIEWS["Axial"], np.zeros(3)), arrayToRas)


def test_click_outside_the_volume_is_refused(scene, volumeNode):
    arrayToRas = arrayToRasMatrix(orientedImageFromVolumeNode(volumeNode))
    sliceNode = _sliceNode(scene, VIEWS["Axial"], (arrayToRas @ [7, 6, 5, 1])[:3])
    farAway = _xyOfRas(sliceNode, (arrayToRas @ [40, 6, 5, 1])[:3])
    with pytest.raises(OutsideVolumeError):
        slicePositionFromXy(sliceNode, farAway, arrayToRas, (11, 13, 15))
