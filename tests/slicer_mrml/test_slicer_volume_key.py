"""The embedding cache key: equal keys only for equal voxels on equal grids.

The old key (volume node ID and image modification time) was the same for the same volume
resampled onto two segmentation grids, or seen through a changed transform, so the engine reused
embeddings of other voxels."""

from __future__ import annotations

import numpy as np
import pytest
import slicer
from mrml_fixtures import loadVolume, makeEditor, writeImage

from SAMSegmentLib.volume import Volume
from SAMSegmentMRML.geometry import arrayToMatrix, volumeKey

pytestmark = pytest.mark.slicer

ROTATED = np.array([[1.0, 0, 0, 20.0], [0, 0, -1.0, -10.0], [0, 1.0, 0, 5.0], [0, 0, 0, 1.0]])


def _volume(shape=(9, 14, 17), spacing=(0.7, 0.7, 3.0)) -> Volume:
    rng = np.random.default_rng(5)
    return Volume(rng.integers(0, 500, shape).astype(np.int16), spacing=spacing, origin=(12.0, -30.0, 55.0))


@pytest.fixture
def volumeNode(scene, tmp_path):
    return loadVolume(scene, writeImage(tmp_path / "image.nrrd", _volume()))


def _editorKey(editor) -> str:
    """The key the effect computes when a session starts (SegmentEditorEffect._startSession)."""
    assert editor.logic.UpdateAlignedSourceVolume()
    return volumeKey(editor.volume, editor.logic.GetAlignedSourceVolume(), editor.segmentation)


def _oldKey(volumeNode) -> str:
    return f"{volumeNode.GetID()}:{volumeNode.GetImageData().GetMTime()}"


def test_the_same_setup_gives_the_same_key(scene, volumeNode):
    editor = makeEditor(scene, volumeNode)
    first = _editorKey(editor)
    assert _editorKey(editor) == first  # the editor resamples its aligned source volume again
    # A new session on the same segmentation, through another editor.
    again = makeEditor(scene, volumeNode)
    again.node.SetAndObserveSegmentationNode(editor.segmentation)
    again.segmentation = editor.segmentation
    assert _editorKey(again) == first
    # Another segmentation on the same grid sees the same voxels: it shares the embeddings.
    assert _editorKey(makeEditor(scene, volumeNode)) == first
    # The research panels' key (the volume in world coordinates) is stable too.
    assert volumeKey(volumeNode) == volumeKey(volumeNode)


def test_the_same_volume_on_two_segmentation_grids_gets_two_keys(scene, tmp_path, volumeNode):
    coarseNode = loadVolume(scene, writeImage(tmp_path / "coarse.nrrd", _volume((9, 7, 9), (1.4, 1.4, 3.0))))
    onVolume = makeEditor(scene, volumeNode)
    onCoarse = makeEditor(scene, volumeNode, referenceVolumeNode=coarseNode)
    assert _editorKey(onVolume) != _editorKey(onCoarse)
    assert _oldKey(onVolume.volume) == _oldKey(onCoarse.volume)  # what the old key could not tell apart


def test_a_changed_transform_changes_the_key_and_undoing_it_restores_it(scene, volumeNode):
    editor = makeEditor(scene, volumeNode)
    plain = _editorKey(editor)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    editor.segmentation.SetAndObserveTransformNodeID(transform.GetID())
    assert _editorKey(editor) == plain  # an identity transform resamples nothing differently
    transform.SetMatrixTransformToParent(arrayToMatrix(ROTATED))
    rotated = _editorKey(editor)
    assert rotated != plain
    shifted = ROTATED.copy()
    shifted[0, 3] += 0.5
    transform.SetMatrixTransformToParent(arrayToMatrix(shifted))
    assert _editorKey(editor) not in (plain, rotated)
    transform.SetMatrixTransformToParent(arrayToMatrix(ROTATED))
    assert _editorKey(editor) == rotated
    # The source volume's own transform counts as well, in the editor and in the research panels.
    worldKey = volumeKey(volumeNode)
    volumeNode.SetAndObserveTransformNodeID(transform.GetID())
    assert _editorKey(editor) != rotated
    assert volumeKey(volumeNode) != worldKey
    # A non-linear transform re-keys whenever it is modified.
    grid = scene.AddNewNodeByClass("vtkMRMLGridTransformNode")
    volumeNode.SetAndObserveTransformNodeID(grid.GetID())
    before = volumeKey(volumeNode)
    grid.Modified()
    assert volumeKey(volumeNode) != before


def test_editing_voxels_or_the_volume_geometry_changes_the_key(scene, volumeNode):
    editor = makeEditor(scene, volumeNode)
    keys = [_editorKey(editor), volumeKey(volumeNode)]
    voxels = slicer.util.arrayFromVolume(volumeNode)
    voxels[3, 4, 5] += 1
    slicer.util.arrayFromVolumeModified(volumeNode)
    edited = [_editorKey(editor), volumeKey(volumeNode)]
    assert edited[0] != keys[0] and edited[1] != keys[1]
    # Spacing lives in the volume node, not in its image data: the old key missed it.
    oldKey = _oldKey(volumeNode)
    volumeNode.SetSpacing(0.7, 0.7, 2.0)
    assert _oldKey(volumeNode) == oldKey
    assert _editorKey(editor) != edited[0] and volumeKey(volumeNode) != edited[1]
