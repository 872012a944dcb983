"""What the user may do while a propagation runs, and engine failures mid-way: the finished slices
land in the segment they were meant for, nothing else is touched, and the user is told."""

from __future__ import annotations

import numpy as np
import pytest
import slicer
from test_slicer_session import _box, _permissive, _pump, _segment, editor, session, worker  # noqa: F401 - fixtures

from SAMSegmentLib.protocol import MessageKind
from SAMSegmentMRML.session import NoticeKind

pytestmark = pytest.mark.slicer


def _startPropagation(running, target, slicesDone: int = 2) -> None:
    """Propagate from ``running`` (a session) into ``target`` (an editor) until some slices are done."""
    running.setBox(*_box(running))
    running.propagate(target.segmentID, "forward", sliceRange=(2, 9), stopRule=_permissive())
    _pump(running, lambda notices: sum(m.kind is MessageKind.SLICE for m in running.worker.polled) >= slicesDone)


def _written(running) -> list:
    return _pump(running, lambda notices: any(n.kind in (NoticeKind.WRITTEN, NoticeKind.ERROR) for n in notices))


def test_selecting_another_segment_mid_propagation_writes_into_the_original_target(session, editor):
    other = editor.addSegment("other")
    _startPropagation(session, editor)
    editor.node.SetSelectedSegmentID(other)  # the user clicks another segment in the list
    notices = _written(session)
    assert notices[-1].kind is NoticeKind.WRITTEN, notices
    slices = [m.value for m in session.worker.polled if m.kind is MessageKind.SLICE]
    written = _segment(editor)
    for sliceResult in slices:
        np.testing.assert_array_equal(written[sliceResult.index], sliceResult.mask)
    assert not (slicer.util.arrayFromSegmentBinaryLabelmap(editor.segmentation, other, editor.volume) > 0).any()
    assert editor.node.GetSelectedSegmentID() == other  # the user's choice stays


def test_removing_the_target_segment_mid_propagation_keeps_the_slices_in_a_new_segment_of_that_name(session, editor):
    _startPropagation(session, editor)
    editor.segmentation.GetSegmentation().RemoveSegment(editor.segmentID)
    notices = _written(session)
    assert notices[-1].kind is NoticeKind.WRITTEN and "new segment 'organ'" in notices[-1].text
    segmentation = editor.segmentation.GetSegmentation()
    newID = segmentation.GetSegmentIdBySegmentName("organ")
    slices = [m.value for m in session.worker.polled if m.kind is MessageKind.SLICE]
    written = slicer.util.arrayFromSegmentBinaryLabelmap(editor.segmentation, newID, editor.volume) > 0
    for sliceResult in slices:
        np.testing.assert_array_equal(written[sliceResult.index], sliceResult.mask)
    assert segmentation.GetNumberOfSegments() == 1


def test_removing_the_segmentation_mid_propagation_writes_nothing_and_says_so(session, editor, scene):
    _startPropagation(session, editor)
    scene.RemoveNode(editor.segmentation)
    notices = _written(session)
    assert notices[-1].kind is NoticeKind.ERROR and "segmentation was removed" in notices[-1].text
    assert not session.propagating


class _OutOfMemoryAfter:
    """The tiny model, whose encoder runs out of memory from its ``count``-th slice on."""

    def __init__(self, model, count: int) -> None:
        self.wrapped, self.left = model, count

    def __getattr__(self, name: str) -> object:
        return getattr(self.wrapped, name)

    def encode(self, image01):
        import torch

        self.left -= 1
        if self.left < 0:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.wrapped.encode(image01)


def test_running_out_of_memory_mid_propagation_leaves_no_preview_and_the_segment_as_it_was(editor, scene):
    from test_slicer_session import sessionWith
    from tiny_models import tiny_sam

    with sessionWith(_OutOfMemoryAfter(tiny_sam(), 3), "sam_vit_b", editor, scene) as session:
        session.setBox(*_box(session))
        session.propagate(editor.segmentID, "forward", stopRule=_permissive())
        notices = []
        while not any(n.kind is NoticeKind.OUT_OF_MEMORY for n in notices):
            notices += _pump(session, lambda got: bool(got), timeout=60)
        assert session.preview.node is None and not session.propagating
        assert not _segment(editor).any()
