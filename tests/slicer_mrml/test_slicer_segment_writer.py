"""Masks written through the Segment Editor logic honour masking, overwrite and undo."""

from __future__ import annotations

import numpy as np
import pytest
import slicer
from mrml_fixtures import loadVolume, makeEditor, writeImage

from SAMSegmentLib.volume import Axis, Volume
from SAMSegmentMRML.segment_writer import EditorLogicEditing, MaskWrite, writeSegmentMasks

pytestmark = pytest.mark.slicer

SHAPE = (6, 16, 20)  # k, j, i


@pytest.fixture
def editor(scene, tmp_path):
    array = np.full(SHAPE, 100, np.int16)
    array[:, :, 10:] = 300  # right half brighter, for the intensity range
    volume = Volume(array, spacing=(0.9, 0.9, 2.0), origin=(3.0, 4.0, 5.0), direction=np.diag([1.0, -1.0, 1.0]))
    editor = makeEditor(scene, loadVolume(scene, writeImage(tmp_path / "image.nrrd", volume)))
    editor.target = editor.addSegment("target")
    editor.other = editor.addSegment("other")
    return editor


def _box(k: slice, j: slice, i: slice) -> np.ndarray:
    mask = np.zeros(SHAPE, bool)
    mask[k, j, i] = True
    return mask


def _segment(editor, segmentID: str) -> np.ndarray:
    return slicer.util.arrayFromSegmentBinaryLabelmap(editor.segmentation, segmentID, editor.volume) > 0


def _write(editor, segmentID: str, mask: np.ndarray, axis: Axis | None = None, indices=()) -> None:
    editor.node.SetSelectedSegmentID(segmentID)  # as the user selects the segment to edit
    geometry = editor.logic.GetAlignedSourceVolume()
    writeSegmentMasks(
        EditorLogicEditing(editor.logic), editor.segmentation, geometry, [MaskWrite(segmentID, mask, axis, indices)]
    )


def test_write_replaces_the_segment_on_the_written_slices_only(editor):
    _write(editor, editor.target, _box(slice(1, 5), slice(2, 12), slice(2, 12)))
    newSlice = _box(slice(None), slice(5, 7), slice(5, 7))
    _write(editor, editor.target, newSlice, Axis.AXIAL, [3])

    result = _segment(editor, editor.target)
    np.testing.assert_array_equal(result[3], newSlice[3])  # shrunk on slice 3
    expectedElsewhere = _box(slice(1, 5), slice(2, 12), slice(2, 12))
    np.testing.assert_array_equal(np.delete(result, 3, axis=0), np.delete(expectedElsewhere, 3, axis=0))


def test_editable_area_inside_a_mask_segment(editor):
    _write(editor, editor.other, _box(slice(None), slice(0, 8), slice(None)))
    editor.node.SetMaskMode(slicer.vtkMRMLSegmentationNode.EditAllowedInsideSingleSegment)
    editor.node.SetMaskSegmentID(editor.other)
    wanted = _box(slice(2, 4), slice(4, 12), slice(4, 12))
    _write(editor, editor.target, wanted)
    np.testing.assert_array_equal(_segment(editor, editor.target), wanted & _box(slice(None), slice(0, 8), slice(None)))


def test_editable_area_outside_all_segments(editor):
    other = _box(slice(None), slice(None), slice(0, 6))
    _write(editor, editor.other, other)
    editor.node.SetMaskMode(slicer.vtkMRMLSegmentationNode.EditAllowedOutsideAllSegments)
    wanted = _box(slice(2, 4), slice(4, 12), slice(2, 12))
    _write(editor, editor.target, wanted)
    np.testing.assert_array_equal(_segment(editor, editor.target), wanted & ~other)
    np.testing.assert_array_equal(_segment(editor, editor.other), other)


def test_intensity_range_limits_the_write(editor):
    editor.node.SetSourceVolumeIntensityMask(True)
    editor.node.SetSourceVolumeIntensityMaskRange(200, 400)
    wanted = _box(slice(2, 4), slice(4, 12), slice(4, 16))
    _write(editor, editor.target, wanted)
    np.testing.assert_array_equal(
        _segment(editor, editor.target), wanted & _box(slice(None), slice(None), slice(10, None))
    )


@pytest.mark.parametrize("overwrite", [True, False], ids=["overwrite", "no-overwrite"])
def test_overwrite_of_other_segments(editor, overwrite):
    other = _box(slice(None), slice(None), slice(0, 8))
    _write(editor, editor.other, other)
    editor.node.SetOverwriteMode(
        slicer.vtkMRMLSegmentEditorNode.OverwriteAllSegments
        if overwrite
        else slicer.vtkMRMLSegmentEditorNode.OverwriteNone
    )
    wanted = _box(slice(2, 4), slice(4, 12), slice(4, 12))
    _write(editor, editor.target, wanted)
    np.testing.assert_array_equal(_segment(editor, editor.target), wanted)
    np.testing.assert_array_equal(_segment(editor, editor.other), other & ~wanted if overwrite else other)


def test_undo_restores_every_segment_exactly(editor):
    before = _box(slice(0, 3), slice(3, 9), slice(3, 15))
    _write(editor, editor.target, before)
    _write(editor, editor.other, _box(slice(None), slice(10, 14), slice(None)))
    targetBefore, otherBefore = _segment(editor, editor.target), _segment(editor, editor.other)

    _write(editor, editor.target, _box(slice(None), slice(8, 15), slice(5, 12)), Axis.AXIAL, range(1, 5))
    assert not np.array_equal(_segment(editor, editor.target), targetBefore)
    editor.logic.Undo()
    np.testing.assert_array_equal(_segment(editor, editor.target), targetBefore)
    np.testing.assert_array_equal(_segment(editor, editor.other), otherBefore)


def test_bad_mask_changes_nothing(editor):
    _write(editor, editor.target, _box(slice(0, 2), slice(0, 5), slice(0, 5)))
    before = _segment(editor, editor.target)
    undoBefore = editor.logic.CanUndo()
    with pytest.raises(ValueError, match="shape"):
        _write(editor, editor.target, np.ones((3, 3, 3), bool))
    with pytest.raises(KeyError, match="no segment"):
        _write(editor, "missing", _box(slice(0, 1), slice(0, 1), slice(0, 1)))
    np.testing.assert_array_equal(_segment(editor, editor.target), before)
    assert editor.logic.CanUndo() == undoBefore


def test_a_segment_that_is_not_selected_is_written_and_the_selection_kept(editor):
    """The user selected another segment meanwhile (e.g. during a propagation): the write still
    goes into its own segment, with the editable area computed for it, and the selection stays."""
    editor.node.SetSelectedSegmentID(editor.other)
    wanted = _box(slice(1, 3), slice(2, 6), slice(2, 6))
    writeSegmentMasks(
        EditorLogicEditing(editor.logic),
        editor.segmentation,
        editor.logic.GetAlignedSourceVolume(),
        [MaskWrite(editor.target, wanted)],
    )
    np.testing.assert_array_equal(_segment(editor, editor.target), wanted)
    assert not _segment(editor, editor.other).any()
    assert editor.node.GetSelectedSegmentID() == editor.other


@pytest.mark.parametrize("overwrite", [True, False], ids=["overwrite", "no-overwrite"])
def test_masking_inside_another_segment_never_gives_it_voxels(editor, overwrite):
    """Editable area "inside segment B": replacing A's old voxels on a slice must not hand them to B
    (Slicer's erase-inside rule gives erased voxels to the mask segment). B only loses the voxels A
    newly takes, and only when the editor's overwrite setting says so."""
    insideOther = _box(slice(None), slice(0, 8), slice(None))
    oldTarget = _box(slice(2, 3), slice(2, 6), slice(2, 6)) | _box(slice(2, 3), slice(10, 14), slice(2, 6))
    _write(editor, editor.other, insideOther & ~oldTarget)
    _write(editor, editor.target, oldTarget)
    otherBefore = _segment(editor, editor.other)
    editor.node.SetOverwriteMode(
        slicer.vtkMRMLSegmentEditorNode.OverwriteAllSegments
        if overwrite
        else slicer.vtkMRMLSegmentEditorNode.OverwriteNone
    )
    editor.node.SetMaskMode(slicer.vtkMRMLSegmentationNode.EditAllowedInsideSingleSegment)
    editor.node.SetMaskSegmentID(editor.other)
    wanted = _box(slice(None), slice(4, 12), slice(4, 12))  # overlaps both of A's old parts: both replaced
    _write(editor, editor.target, wanted, Axis.AXIAL, [2])
    target, other = _segment(editor, editor.target), _segment(editor, editor.other)
    # A's slice is the new mask within B, with what A held of it outside B (the mask keeps it A's).
    np.testing.assert_array_equal(target[2], ((wanted & insideOther) | (wanted & oldTarget))[2])
    np.testing.assert_array_equal(other, otherBefore & ~target if overwrite else otherBefore)
    assert editor.node.GetMaskMode() == slicer.vtkMRMLSegmentationNode.EditAllowedInsideSingleSegment


def test_another_object_of_the_segment_on_the_written_slice_is_kept(editor):
    """A segment holding two objects (two lesions, both kidneys): writing one of them on a slice
    replaces its old outline, a leak joined to it included, and keeps the other object."""
    written = _box(slice(1, 5), slice(2, 7), slice(2, 7))
    leak = _box(slice(1, 5), slice(6, 8), slice(2, 12))  # joined to the written object's outline
    other = _box(slice(1, 5), slice(11, 15), slice(14, 18))
    _write(editor, editor.target, written | leak | other)
    corrected = _box(slice(None), slice(3, 6), slice(3, 6))
    _write(editor, editor.target, corrected, Axis.AXIAL, [2, 3])

    result = _segment(editor, editor.target)
    for index in (2, 3):
        np.testing.assert_array_equal(result[index], (corrected | other)[index])
    np.testing.assert_array_equal(result[[1, 4]], (written | leak | other)[[1, 4]])
    editor.logic.Undo()
    np.testing.assert_array_equal(_segment(editor, editor.target), written | leak | other)


def test_a_click_on_a_part_the_mask_misses_replaces_that_part(editor):
    """A negative click on a stray part (a leak into a neighbour not joined to the object) removes
    it with the written mask; a part without a click is kept."""
    objectOutline = _box(slice(2, 4), slice(2, 7), slice(2, 7))
    stray, kept = _box(slice(2, 4), slice(11, 14), slice(2, 6)), _box(slice(2, 4), slice(11, 14), slice(14, 18))
    _write(editor, editor.target, objectOutline | stray | kept)
    editor.node.SetSelectedSegmentID(editor.target)
    writeSegmentMasks(
        EditorLogicEditing(editor.logic),
        editor.segmentation,
        editor.logic.GetAlignedSourceVolume(),
        [MaskWrite(editor.target, objectOutline, Axis.AXIAL, [3], clicks=[(3, 12, 3), (3, 100, 3)])],
    )  # the second click is off the grid: ignored
    result = _segment(editor, editor.target)
    np.testing.assert_array_equal(result[3], (objectOutline | kept)[3])
    np.testing.assert_array_equal(result[2], (objectOutline | stray | kept)[2])


@pytest.mark.parametrize("axis", list(Axis))
def test_parts_are_connected_within_the_written_slice(editor, axis):
    """Two objects on a written slice joined only through the next written slice are two parts
    there: writing one keeps the other on that slice (on the next slice they are one part)."""
    count = SHAPE[axis.array_axis]
    rows, columns = (size for index, size in enumerate(SHAPE) if index != axis.array_axis)

    def onSlices(first: int, last: int, row: slice, column: slice) -> np.ndarray:
        inSliceOrder = np.zeros((count, rows, columns), bool)
        inSliceOrder[first : last + 1, row, column] = True
        return np.moveaxis(inSliceOrder, 0, axis.array_axis)

    written, other = onSlices(2, 3, slice(1, 4), slice(1, 4)), onSlices(2, 3, slice(rows - 4, rows - 1), slice(-4, -1))
    bridge = onSlices(2, 2, slice(1, rows - 1), slice(1, columns - 1))
    _write(editor, editor.target, written | other | bridge)
    before = _segment(editor, editor.target)
    corrected = onSlices(2, 3, slice(1, 2), slice(1, 2))
    _write(editor, editor.target, corrected, axis, [2, 3])
    onWritten, onSlice3 = onSlices(2, 3, slice(None), slice(None)), onSlices(3, 3, slice(None), slice(None))
    expected = (before & ~onWritten) | corrected | (other & onSlice3)
    np.testing.assert_array_equal(_segment(editor, editor.target), expected)
