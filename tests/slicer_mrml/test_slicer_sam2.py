"""The effect's session with a SAM 2 model (tiny, random) on real MRML and the real worker: the
memory policy reaches the worker, and a correction after a propagation is propagated from the
preview the user saw, rewriting only the slices it reaches."""

from __future__ import annotations

import numpy as np
import pytest
from test_slicer_session import RecordingWorker, _pump, _segment, editor  # noqa: F401 - editor is a fixture

from SAMSegmentLib.protocol import MessageKind
from SAMSegmentLib.volume import Axis
from SAMSegmentMRML.segment_writer import EditorLogicEditing, replacedParts
from SAMSegmentMRML.session import EditorSession, NoticeKind
from SAMSegmentMRML.slice_views import SlicePosition

pytestmark = [pytest.mark.slicer, pytest.mark.sam2]
pytest.importorskip("sam2")


class SubmitRecordingWorker(RecordingWorker):
    """Also keeps every request the session submitted."""

    def __init__(self, worker) -> None:
        super().__init__(worker)
        self.submitted = []

    def submit(self, request) -> int:
        self.submitted.append(request)
        return super().submit(request)


@pytest.fixture(scope="module")
def sam2Worker():
    from sam2_tiny import tiny_sam2_predictor

    from SAMSegmentLib.registry import get_spec
    from SAMSegmentLib.worker import InferenceWorker, SAM2Model, WorkerSettings

    predictor = tiny_sam2_predictor(object_score=4.0)
    with InferenceWorker(WorkerSettings(), loader=lambda request: SAM2Model(get_spec(request.model), predictor)) as w:
        yield w


@pytest.fixture
def session(sam2Worker, editor, scene):
    recording = SubmitRecordingWorker(sam2Worker)
    session = EditorSession(
        recording, scene, editor.segmentation, editor.logic.GetAlignedSourceVolume(), EditorLogicEditing(editor.logic)
    )
    session.loadModel("sam2.1_hiera_tiny", "cpu")
    session.setVolume("soft_tissue", memoryPolicy="self-sorting")
    _pump(session, lambda notices: session.modelReady)
    yield session
    session.close()


def _slices(session) -> dict:
    return {m.value.index: m.value.mask for m in session.worker.polled if m.kind is MessageKind.SLICE}


def test_a_correction_is_propagated_from_the_preview_shown(session, editor):
    (setVolume,) = [r for r in session.worker.submitted if type(r).__name__ == "SetVolume"]
    assert setVolume.memory_policy == "self-sorting"
    session.setBox(SlicePosition(Axis.AXIAL, 5, (10.0, 8.0)), SlicePosition(Axis.AXIAL, 5, (38.0, 32.0)))
    _pump(session, lambda notices: session.canApply)
    session.propagate(editor.segmentID, "both")
    _pump(session, lambda notices: any(n.kind is NoticeKind.WRITTEN for n in notices))
    first = _segment(editor)
    assert sorted(_slices(session)) == list(range(10))

    session.worker.polled.clear()
    session.addPoint(SlicePosition(Axis.AXIAL, 8, (24.0, 20.0)), True)
    session.addPoint(SlicePosition(Axis.AXIAL, 8, (30.0, 12.0)), False)
    _pump(session, lambda notices: session.canApply)
    shown = session.preview.previewArray(session.geometry)[8]
    clicked = np.zeros_like(shown)
    clicked[20, 24] = clicked[12, 30] = True
    session.propagate(editor.segmentID, "forward")
    _pump(session, lambda notices: any(n.kind is NoticeKind.WRITTEN for n in notices))
    after = _segment(editor)
    assert sorted(_slices(session)) == [8, 9]
    # The preview replaces the parts of the first result it overlaps or that were clicked.
    replaced = replacedParts(first[8:9], (shown | clicked)[None], Axis.AXIAL)[0]
    np.testing.assert_array_equal(after[8], shown | (first[8] & ~replaced))
    np.testing.assert_array_equal(after[:8], first[:8])
    predicts = [r for r in session.worker.submitted if type(r).__name__ == "Predict"]
    assert predicts and all(r.object_id == editor.segmentID for r in predicts)
