"""The effect's session end to end on real MRML and the real inference worker (tiny random SAM):
previews, Apply, propagation, cancel, undo, stale answers and worker errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import slicer
from mrml_fixtures import loadVolume, makeEditor, writeImage

from SAMSegmentLib.protocol import MessageKind
from SAMSegmentLib.volume import Axis, Volume
from SAMSegmentMRML.segment_writer import EditorLogicEditing, MaskWrite, writeSegmentMasks
from SAMSegmentMRML.session import EditorSession, NoticeKind
from SAMSegmentMRML.slice_views import SlicePosition

pytestmark = pytest.mark.slicer
torch = pytest.importorskip("torch")

# Lets random-weight masks through so propagation runs to the volume's ends.
SLICE_DELAY_S = 0.15  # slows the tiny encoder so a cancel lands mid-propagation


class RecordingWorker:
    """The real worker, with every polled message kept for checking what the session did."""

    def __init__(self, worker) -> None:
        self.worker, self.polled = worker, []

    def submit(self, request) -> int:
        return self.worker.submit(request)

    def cancel(self, requestId=None) -> int:
        return self.worker.cancel(requestId)

    def poll(self):
        messages = self.worker.poll()
        self.polled.extend(messages)
        return messages


@pytest.fixture(scope="module")
def worker():
    from tiny_models import tiny_sam

    from SAMSegmentLib.worker import InferenceWorker, WorkerSettings

    def slowTinySam(request):
        model = tiny_sam()
        encode = model.encode

        def slowEncode(image):
            time.sleep(SLICE_DELAY_S)
            return encode(image)

        model.encode = slowEncode
        return model

    with InferenceWorker(WorkerSettings(prefetch_slices=0), loader=slowTinySam) as running:
        yield running


@pytest.fixture
def editor(scene, tmp_path):
    k, j, i = np.meshgrid(np.arange(10), np.arange(40), np.arange(48), indexing="ij")
    array = np.where(((j - 20) / 10.0) ** 2 + ((i - 24) / 12.0) ** 2 < 1, 150, 0) + 10 * k
    volume = Volume(
        array.astype(np.int16), spacing=(0.8, 0.8, 2.5), origin=(1.0, 2.0, 3.0), direction=np.diag([1.0, -1.0, 1.0])
    )
    editor = makeEditor(scene, loadVolume(scene, writeImage(tmp_path / "image.nrrd", volume)))
    editor.segmentID = editor.addSegment("organ")
    editor.node.SetSelectedSegmentID(editor.segmentID)
    return editor


@pytest.fixture
def session(worker, editor, scene):
    recording = RecordingWorker(worker)
    session = EditorSession(
        recording, scene, editor.segmentation, editor.logic.GetAlignedSourceVolume(), EditorLogicEditing(editor.logic)
    )
    session.loadModel("sam_vit_b", "cpu")
    session.setVolume("soft_tissue")
    _pump(session, lambda notices: session.modelReady)
    yield session
    session.close()


def _pump(session, done, timeout: float = 60.0) -> list:
    notices, deadline = [], time.monotonic() + timeout
    while True:
        notices.extend(session.processMessages())
        if done(notices):
            return notices
        assert not any(n.kind in (NoticeKind.ERROR, NoticeKind.OUT_OF_MEMORY) for n in notices), notices
        assert time.monotonic() < deadline, f"timed out; notices so far: {notices}"
        time.sleep(0.01)


def _segment(editor) -> np.ndarray:
    return slicer.util.arrayFromSegmentBinaryLabelmap(editor.segmentation, editor.segmentID, editor.volume) > 0


def _box(session) -> tuple[SlicePosition, SlicePosition]:
    return SlicePosition(Axis.AXIAL, 5, (10.0, 8.0)), SlicePosition(Axis.AXIAL, 5, (38.0, 32.0))


def _written(before: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A slice holding one part (``before``) after ``mask`` is written on it: the mask replaces the
    part it overlaps, and keeps one it misses."""
    return mask if (before & mask).any() else mask | before


def _seed(editor, mask: np.ndarray) -> None:
    writeSegmentMasks(
        EditorLogicEditing(editor.logic),
        editor.segmentation,
        editor.logic.GetAlignedSourceVolume(),
        [MaskWrite(editor.segmentID, mask)],
    )


def test_preview_then_apply_writes_the_prompted_slice_as_one_undo_step(session, editor):
    before = np.zeros((10, 40, 48), bool)
    before[1, 5:9, 5:9] = True
    _seed(editor, before)
    session.setBox(*_box(session))
    _pump(session, lambda notices: session.canApply)
    shown = session.preview.previewArray(session.geometry)
    assert shown[5].any() and not np.delete(shown, 5, axis=0).any()

    session.apply(editor.segmentID)
    after = _segment(editor)
    np.testing.assert_array_equal(after[5], shown[5])
    np.testing.assert_array_equal(np.delete(after, 5, axis=0), np.delete(before, 5, axis=0))
    assert session.prompts.empty and session.preview.node is None
    editor.logic.Undo()
    np.testing.assert_array_equal(_segment(editor), before)


def test_only_the_newest_preview_is_shown_and_cleared_prompts_get_none(session):
    session.addPoint(SlicePosition(Axis.AXIAL, 5, (24.0, 20.0)), True)
    session.addPoint(SlicePosition(Axis.AXIAL, 5, (30.0, 20.0)), True)
    notices = _pump(session, lambda notices: session.canApply)
    assert sum(n.kind is NoticeKind.PREVIEW for n in notices) == 1
    previews = [m for m in session.worker.polled if m.kind is MessageKind.RESULT and hasattr(m.value, "prediction")]
    assert len(previews) <= 1  # the first was superseded before or while it ran

    session.addPoint(SlicePosition(Axis.AXIAL, 5, (20.0, 25.0)), False)
    session.clearPrompts()
    time.sleep(3 * SLICE_DELAY_S)
    assert _pump(session, lambda notices: True, timeout=1) == []
    assert session.preview.node is None and not session.canApply


def test_propagation_writes_once_and_undo_restores_exactly(session, editor):
    before = np.zeros((10, 40, 48), bool)
    before[:, 30:34, 40:44] = True  # one part on every slice: replaced where a propagated mask overlaps it
    _seed(editor, before)
    session.setBox(*_box(session))
    session.propagate(editor.segmentID, "both", stopRule=_permissive())
    notices = _pump(session, lambda notices: any(n.kind is NoticeKind.WRITTEN for n in notices))

    slices = [m.value for m in session.worker.polled if m.kind is MessageKind.SLICE]
    assert sorted(s.index for s in slices) == list(range(10))
    assert [n.progress for n in notices if n.kind is NoticeKind.PROGRESS][-1][0] == 10
    after = _segment(editor)
    for sliceResult in slices:
        np.testing.assert_array_equal(after[sliceResult.index], _written(before[sliceResult.index], sliceResult.mask))
    assert session.preview.node is None
    editor.logic.Undo()
    np.testing.assert_array_equal(_segment(editor), before)


def test_cancel_keeps_the_finished_slices_in_one_undo_step(session, editor):
    before = np.zeros((10, 40, 48), bool)
    before[:, 30:34, 40:44] = True
    _seed(editor, before)
    session.setBox(*_box(session))
    session.propagate(editor.segmentID, "forward", sliceRange=(2, 9), stopRule=_permissive())
    _pump(session, lambda notices: sum(m.kind is MessageKind.SLICE for m in session.worker.polled) >= 2)
    session.cancelPropagation()
    notices = _pump(session, lambda notices: any(n.kind in (NoticeKind.WRITTEN, NoticeKind.STATUS) for n in notices))

    slices = {m.value.index: m.value.mask for m in session.worker.polled if m.kind is MessageKind.SLICE}
    done = sorted(slices)
    assert 2 <= len(done) < 5 and done == list(range(5, 5 + len(done)))
    assert "Cancelled" in notices[-1].text
    after = _segment(editor)
    untouched = [index for index in range(10) if index not in done]
    np.testing.assert_array_equal(after[untouched], before[untouched])
    for index in done:
        np.testing.assert_array_equal(after[index], _written(before[index], slices[index]))
    assert not session.propagating
    editor.logic.Undo()
    np.testing.assert_array_equal(_segment(editor), before)


def test_worker_error_is_a_message_and_the_segmentation_is_untouched(session, editor):
    before = np.zeros((10, 40, 48), bool)
    before[3, 2:6, 2:6] = True
    _seed(editor, before)
    with pytest.raises(ValueError, match="Place prompts"):
        session.propagate(editor.segmentID)
    # The engine refuses a box too small to segment; the worker reports it and keeps serving.
    session.setBox(SlicePosition(Axis.AXIAL, 5, (10.0, 10.0)), SlicePosition(Axis.AXIAL, 5, (10.5, 10.5)))
    notices = []
    deadline = time.monotonic() + 30
    while not notices and time.monotonic() < deadline:
        notices.extend(session.processMessages())
        time.sleep(0.01)
    assert [n.kind for n in notices] == [NoticeKind.ERROR] and "too small" in notices[0].text
    assert not session.canApply and session.preview.node is None
    with pytest.raises(ValueError, match="no up-to-date preview"):
        session.apply(editor.segmentID)
    np.testing.assert_array_equal(_segment(editor), before)
    session.setBox(*_box(session))
    _pump(session, lambda notices: session.canApply)


def _permissive():
    from SAMSegmentLib.propagation import StopRule

    return StopRule.keep_going()


@contextmanager
def sessionWith(model, modelName: str, editor, scene) -> Iterator[EditorSession]:
    """A session on a worker of its own that serves ``model`` (as ``modelName``), once it is loaded."""
    from SAMSegmentLib.worker import InferenceWorker, WorkerSettings

    with InferenceWorker(WorkerSettings(prefetch_slices=0), loader=lambda request: model) as worker:
        session = EditorSession(
            RecordingWorker(worker),
            scene,
            editor.segmentation,
            editor.logic.GetAlignedSourceVolume(),
            EditorLogicEditing(editor.logic),
        )
        try:
            session.loadModel(modelName, "cpu")
            session.setVolume("soft_tissue")
            _pump(session, lambda notices: session.modelReady)
            yield session
        finally:
            session.close()


def test_a_box_only_model_refuses_a_click_and_keeps_the_prompts(editor, scene):
    from tiny_models import tiny_sam, zooming

    with sessionWith(zooming(tiny_sam()), "litemedsam", editor, scene) as session:
        session.setBox(*_box(session))
        _pump(session, lambda notices: session.canApply)
        box = session.prompts.box
        with pytest.raises(ValueError, match="takes only a box"):
            session.addPoint(SlicePosition(Axis.AXIAL, 5, (24.0, 20.0)), True)
        assert session.prompts.points == [] and session.prompts.box == box
        assert session.canApply  # the preview of the box stays


def test_switching_to_a_box_only_model_removes_the_clicks_and_segments_the_box_again(editor, scene):
    from tiny_models import tiny_sam, zooming

    from SAMSegmentLib.worker import InferenceWorker, WorkerSettings

    clickModel = tiny_sam()
    models = {"mobile_sam": clickModel, "litemedsam": zooming(clickModel)}
    with InferenceWorker(WorkerSettings(prefetch_slices=0), loader=lambda request: models[request.model]) as worker:
        recording = RecordingWorker(worker)
        session = EditorSession(
            recording,
            scene,
            editor.segmentation,
            editor.logic.GetAlignedSourceVolume(),
            EditorLogicEditing(editor.logic),
        )
        try:
            session.loadModel("mobile_sam", "cpu")
            session.setVolume("soft_tissue")
            session.setBox(*_box(session))
            session.addPoint(SlicePosition(Axis.AXIAL, 5, (24.0, 20.0)), True)
            _pump(session, lambda notices: session.canApply)
            box, revision = session.prompts.box, session.prompts.revision

            session.loadModel("litemedsam", "cpu")
            notices = _pump(session, lambda notices: session.modelReady and session.canApply)
            assert session.prompts.points == [] and session.prompts.box == box
            assert session.prompts.revision > revision  # the preview shown is the box's, asked anew
            assert any(n.kind is NoticeKind.STATUS and "1 click(s) removed" in n.text for n in notices), notices
            with pytest.raises(ValueError, match="takes only a box"):
                session.addPoint(SlicePosition(Axis.AXIAL, 5, (24.0, 20.0)), True)
        finally:
            session.close()
