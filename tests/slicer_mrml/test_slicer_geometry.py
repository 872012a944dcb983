"""Volumes read from Slicer nodes have the geometry SimpleITK reports for the same file."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
from editor_reference import alignedSourceImage
from mrml_fixtures import loadVolume, makeEditor, writeImage

from SAMSegmentLib.volume import Volume
from SAMSegmentMRML.geometry import RAS_TO_LPS, arrayToRasMatrix, volumeFromOrientedImage, volumeFromVolumeNode
from SAMSegmentMRML.segment_writer import EditorLogicEditing, MaskWrite, writeSegmentMasks

pytestmark = pytest.mark.slicer

# Left-handed in LPS: Slicer flips the slice axis to make IJK-to-RAS right-handed.
LEFT_HANDED = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, 1.0]])
OBLIQUE = np.array([[0.8, -0.6, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0]])


def _phantom(direction: np.ndarray) -> Volume:
    """A blob that is off-centre on every axis, so any flip or swap moves it."""
    rng = np.random.default_rng(1)
    k, j, i = np.meshgrid(np.arange(9), np.arange(14), np.arange(17), indexing="ij")
    array = rng.normal(0, 3, (9, 14, 17))
    array[((k - 2) / 2.0) ** 2 + ((j - 4) / 3.0) ** 2 + ((i - 11) / 4.0) ** 2 < 1] += 200
    return Volume(array.astype(np.int16), spacing=(0.7, 0.7, 3.0), origin=(12.0, -30.0, 55.0), direction=direction)


def _physicalPoints(volume: Volume, mask: np.ndarray) -> np.ndarray:
    kji = np.argwhere(mask)
    return volume.ijk_to_physical(kji[:, ::-1])


def _sorted(points: np.ndarray) -> np.ndarray:
    return points[np.lexsort(np.round(points, 3).T)]


@pytest.mark.parametrize("direction", [LEFT_HANDED, OBLIQUE], ids=["left-handed", "oblique"])
def test_volume_from_node_matches_simpleitk_voxel_for_voxel(scene, tmp_path, direction):
    path = writeImage(tmp_path / "image.nrrd", _phantom(direction))
    fromSlicer = volumeFromVolumeNode(loadVolume(scene, path))
    image = sitk.ReadImage(str(path))
    fromItk = sitk.GetArrayFromImage(image)

    assert fromSlicer.spacing == pytest.approx(image.GetSpacing())
    # Every Slicer voxel sits at a physical point where SimpleITK has a voxel of the same value.
    kji = np.argwhere(np.ones(fromSlicer.array.shape, bool))
    points = fromSlicer.ijk_to_physical(kji[:, ::-1])
    itkIjk = [image.TransformPhysicalPointToIndex(tuple(point)) for point in points]
    itkValues = np.array([fromItk[k, j, i] for i, j, k in itkIjk])
    np.testing.assert_array_equal(itkValues, fromSlicer.array.reshape(-1))


def test_left_handed_file_is_flipped_in_slicer_but_geometry_agrees(scene, tmp_path):
    path = writeImage(tmp_path / "image.nrrd", _phantom(LEFT_HANDED))
    fromSlicer = volumeFromVolumeNode(loadVolume(scene, path))
    image = sitk.ReadImage(str(path))
    # The measured fact this guards against: raw indices differ (slice k is slice N-1-k)...
    np.testing.assert_array_equal(fromSlicer.array, sitk.GetArrayFromImage(image)[::-1])
    # ...but the engine's geometry maps each to the same place.
    assert np.linalg.det(fromSlicer.direction) == pytest.approx(1.0)
    assert fromSlicer.ijk_to_physical(np.array([2, 3, 8])) == pytest.approx(
        image.TransformIndexToPhysicalPoint((2, 3, 0))
    )


def test_mask_found_in_simpleitk_lands_at_the_same_place_in_slicer(scene, tmp_path):
    volume = _phantom(LEFT_HANDED)
    path = writeImage(tmp_path / "image.nrrd", volume)
    itkVolume = Volume(**{**volume.__dict__, "array": sitk.GetArrayFromImage(sitk.ReadImage(str(path)))})
    itkMask = itkVolume.array > 100  # what a model would find on the SimpleITK grid

    editor = makeEditor(scene, loadVolume(scene, path))
    geometry = editor.logic.GetAlignedSourceVolume()
    slicerVolume = volumeFromOrientedImage(geometry)
    segmentID = editor.addSegment("blob")
    writeSegmentMasks(
        EditorLogicEditing(editor.logic),
        editor.segmentation,
        geometry,
        [MaskWrite(segmentID, slicerVolume.array > 100)],
    )
    written = slicer.util.arrayFromSegmentBinaryLabelmap(editor.segmentation, segmentID, editor.volume)
    assert written.sum() == itkMask.sum() > 0
    arrayToRas = arrayToRasMatrix(geometry)
    kji = np.argwhere(written)
    rasPoints = (arrayToRas @ np.c_[kji[:, ::-1], np.ones(len(kji))].T).T[:, :3]
    np.testing.assert_allclose(
        _sorted(rasPoints @ RAS_TO_LPS.T), _sorted(_physicalPoints(itkVolume, itkMask)), atol=1e-4
    )


def test_source_is_resampled_onto_a_different_reference_geometry(scene, tmp_path):
    volume = _phantom(np.eye(3))
    volumeNode = loadVolume(scene, writeImage(tmp_path / "image.nrrd", volume))
    # A segmentation made on a coarser grid covering the same region.
    coarse = Volume(
        np.zeros((9, 7, 9), np.int16) + np.arange(9)[:, None, None].astype(np.int16),
        spacing=(1.4, 1.4, 3.0),
        origin=volume.origin,
    )
    coarseNode = loadVolume(scene, writeImage(tmp_path / "coarse.nrrd", coarse))
    editor = makeEditor(scene, volumeNode, referenceVolumeNode=coarseNode)

    aligned = alignedSourceImage(volumeNode, editor.segmentation)
    alignedVolume = volumeFromOrientedImage(aligned)
    assert alignedVolume.array.shape == coarse.array.shape
    assert alignedVolume.spacing == pytest.approx(coarse.spacing)
    # Voxel (i, j, k) of the coarse grid is voxel (2i, 2j, k) of the source.
    np.testing.assert_allclose(alignedVolume.array[:, 3, 4], volume.array[:, 6, 8], atol=1e-3)
    # The Segment Editor's own aligned source volume agrees.
    np.testing.assert_allclose(
        volumeFromOrientedImage(editor.logic.GetAlignedSourceVolume()).array, alignedVolume.array
    )


def test_same_grid_is_not_resampled(scene, tmp_path):
    volumeNode = loadVolume(scene, writeImage(tmp_path / "image.nrrd", _phantom(LEFT_HANDED)))
    editor = makeEditor(scene, volumeNode)
    aligned = alignedSourceImage(volumeNode, editor.segmentation)
    np.testing.assert_array_equal(volumeFromOrientedImage(aligned).array, volumeFromVolumeNode(volumeNode).array)
    assert aligned.GetPointData().GetScalars().GetDataType() == volumeNode.GetImageData().GetScalarType()
