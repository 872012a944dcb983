"""SAM 2 family models in the inference worker, with a tiny random SAM 2.1: previews, propagation,
corrections that keep SAM 2's memory, the memory policy, cancel and errors."""

from __future__ import annotations

import time

import numpy as np
import pytest
from test_worker_doubles import KEEP_GOING, answer_to

from SAMSegmentLib.prompts import Prompts
from SAMSegmentLib.propagation import Direction, ObjectPrompts, PropagationRequest, SliceResult
from SAMSegmentLib.propagation.sam2 import SAM2StopRule, SelfSortingMemoryBank
from SAMSegmentLib.registry import get_spec
from SAMSegmentLib.volume import Axis, Volume
from SAMSegmentLib.worker import (
    InferenceWorker,
    LoadModel,
    MessageKind,
    ModelReady,
    Predict,
    Preview,
    Propagate,
    SAM2Model,
    SetVolume,
    WorkerSettings,
)

pytest.importorskip("sam2")
pytestmark = pytest.mark.sam2

from sam2.modeling.sam2_base import SAM2Base  # noqa: E402
from sam2_tiny import tiny_sam2_predictor, tiny_session  # noqa: E402

SLICES = 8
SEED = 4
CENTRE = Prompts(points=[(32.0, 24.0)], labels=[1])
TIMEOUT = 120


@pytest.fixture(scope="module")
def predictor():
    return tiny_sam2_predictor(object_score=4.0)


def crop(volume: Volume, slices: slice, rows: slice = slice(None), columns: slice = slice(None)) -> Volume:
    return Volume(volume.array[slices, rows, columns].copy(), volume.spacing, volume.origin, volume.direction)


@pytest.fixture
def volume(ct_phantom):
    """The phantom's middle 8 slices, the organ around slice 4."""
    return crop(ct_phantom, slice(2, 2 + SLICES))


@pytest.fixture
def loads() -> list:
    """Every LoadModel the worker's loader served."""
    return []


@pytest.fixture
def worker(predictor, volume, loads):
    """A worker holding the tiny SAM 2.1 and ``volume``; prefetch is on, as in the effect."""

    def loader(request: LoadModel) -> SAM2Model:
        loads.append(request)
        return SAM2Model(get_spec(request.model), predictor)

    with InferenceWorker(WorkerSettings(), loader=loader) as running:
        ready = answer_to(running, LoadModel("sam2.1_hiera_tiny", device="cpu"))
        assert ready.kind is MessageKind.RESULT, ready
        assert answer_to(running, SetVolume(volume)).kind is MessageKind.RESULT
        yield running


@pytest.fixture
def memory_reads(monkeypatch) -> list:
    """(slice, non-prompted slices visible to memory attention) for every SAM 2 decode with memory."""
    reads = []
    upstream = SAM2Base._prepare_memory_conditioned_features

    def spy(self, **kwargs):
        if not kwargs["is_init_cond_frame"]:
            reads.append((kwargs["frame_idx"], dict(kwargs["output_dict"]["non_cond_frame_outputs"])))
        return upstream(self, **kwargs)

    monkeypatch.setattr(SAM2Base, "_prepare_memory_conditioned_features", spy)
    return reads


def propagate(seed: int, prompts: Prompts = CENTRE, **options) -> Propagate:
    return Propagate(PropagationRequest(Axis.AXIAL, seed, [ObjectPrompts("organ", prompts)], **options))


def preview(worker: InferenceWorker, index: int, prompts: Prompts = CENTRE, axis: Axis = Axis.AXIAL) -> SliceResult:
    answer = answer_to(worker, Predict(axis, index, prompts, object_id="organ"), timeout=TIMEOUT)
    assert answer.kind is MessageKind.RESULT, answer
    assert isinstance(answer.value, Preview) and (answer.value.axis, answer.value.index) == (axis, index)
    return answer.value.prediction


def run(worker: InferenceWorker, request: Propagate) -> tuple[list, object]:
    """The messages of one propagation and its final message."""
    messages = worker.wait(worker.submit(request), timeout=TIMEOUT)
    return messages, messages[-1]


def test_a_prompt_previews_the_mask_a_fresh_session_gives(worker, predictor, volume, loads):
    shown = preview(worker, SEED)
    expected = tiny_session(predictor, volume).add_prompts(SEED, "organ", CENTRE)
    assert shown.mask.shape == volume.slice_shape(Axis.AXIAL) and shown.mask.any()
    np.testing.assert_array_equal(shown.mask, expected.mask)
    assert shown.score == pytest.approx(expected.score)
    # No prefetch: once idle, the worker has encoded the prompted slice only.
    encoded = predictor.encoded_frames
    assert worker.wait_idle(TIMEOUT) and predictor.encoded_frames == encoded and worker.predictor is None
    assert [request.model for request in loads] == ["sam2.1_hiera_tiny"]


def test_the_model_is_loaded_once_and_reports_its_spec(predictor, volume):
    loaded = []

    def loader(request: LoadModel) -> SAM2Model:
        loaded.append(request.model)
        return SAM2Model(get_spec(request.model), predictor)

    with InferenceWorker(WorkerSettings(), loader=loader) as worker:
        ready = answer_to(worker, LoadModel("medsam2", device="cpu")).value
        assert isinstance(ready, ModelReady) and ready.spec.name == "medsam2" and ready.device == "cpu"
        for other in (volume, crop(volume, slice(0, 5), slice(4, 44), slice(10, 50))):
            assert answer_to(worker, SetVolume(other)).kind is MessageKind.RESULT
            assert preview(worker, 2).mask.shape == other.slice_shape(Axis.AXIAL)
        assert loaded == ["medsam2"]


def test_propagation_streams_both_directions_then_reports_the_result(worker):
    messages, last = run(worker, propagate(SEED))
    slices = [m.value.index for m in messages if m.kind is MessageKind.SLICE]
    assert slices == [4, 5, 6, 7, 3, 2, 1, 0]
    assert last.kind is MessageKind.RESULT
    outcome = last.value.objects["organ"]
    assert sorted(outcome.slices) == list(range(SLICES)) and not last.value.cancelled
    for message in messages:
        if message.kind is MessageKind.SLICE:
            np.testing.assert_array_equal(outcome.mask[message.value.index], message.value.mask)
    progress = [m.value for m in messages if m.kind is MessageKind.PROGRESS]
    assert progress[-1] == (SLICES, SLICES)


def test_a_correction_after_a_propagation_keeps_its_memory(worker, predictor, volume, memory_reads):
    first = run(worker, propagate(SEED))[1].value.objects["organ"]
    corrected = Prompts(points=[(32.0, 24.0), (12.0, 40.0)], labels=[1, 0])
    memory_reads.clear()
    correction = preview(worker, 6, corrected)
    # Decoded with the propagation's memory (slices 5 and 4 among it), unlike a fresh session.
    ((index, visible),) = memory_reads
    assert index == 6 and {3, 5} <= set(visible)
    fresh = tiny_session(predictor, volume).add_prompts(6, "organ", corrected)
    assert correction.score != pytest.approx(fresh.score)

    memory_reads.clear()
    _messages, last = run(worker, propagate(6, corrected, direction=Direction.FORWARD))
    outcome = last.value.objects["organ"]
    assert outcome.slices == [6, 7]
    np.testing.assert_array_equal(outcome.mask[6], correction.mask)
    # Slice 7 remembered slices 5, 3, ... of the first propagation, which this one did not visit.
    reads = dict(memory_reads)
    assert {5, 3, 2} <= set(reads[7]) and {5, 3, 2} <= set(first.slices)


def test_an_abandoned_preview_leaves_no_trace(worker, predictor, volume):
    preview(worker, 1, Prompts(box=(5, 5, 30, 30)))  # the user then clears it and prompts slice 4
    preview(worker, SEED)
    result = run(worker, propagate(SEED, direction=Direction.BACKWARD))[1].value.objects["organ"]
    session = tiny_session(predictor, volume)
    session.add_prompts(SEED, "organ", CENTRE)
    expected = session.propagate(direction=Direction.BACKWARD).run().objects["organ"]
    assert result.slices == expected.slices == [4, 3, 2, 1, 0]
    np.testing.assert_array_equal(result.mask, expected.mask)


def test_new_prompts_on_a_propagated_seed_are_taken_back_when_abandoned(worker, memory_reads):
    run(worker, propagate(SEED, direction=Direction.FORWARD))
    abandoned = preview(worker, SEED, Prompts(box=(2, 2, 20, 12)))
    preview(worker, 1)  # moved on: the seed gets the propagated prompts back
    memory_reads.clear()
    messages, last = run(worker, propagate(1, direction=Direction.FORWARD))
    outcome = last.value.objects["organ"]
    assert outcome.slices == list(range(1, SLICES))
    # The seed is still a prompted slice (SAM 2 reports it without decoding it again) ...
    assert SEED not in [index for index, _ in memory_reads]
    # ... with the propagated prompts' mask, not the abandoned one.
    seed_result = next(m.value for m in messages if m.kind is MessageKind.SLICE and m.value.index == SEED)
    assert seed_result.score != pytest.approx(abandoned.score)


def test_each_object_and_axis_has_its_own_memory(worker, predictor, volume):
    run(worker, propagate(SEED, direction=Direction.FORWARD, slice_range=(SEED, SEED + 1)))
    other = answer_to(worker, Predict(Axis.AXIAL, 6, CENTRE, object_id="other"), timeout=TIMEOUT).value.prediction
    fresh = tiny_session(predictor, volume).add_prompts(6, "other", CENTRE)
    assert other.score == pytest.approx(fresh.score)  # nothing of "organ" steered it
    coronal = preview(worker, 24, Prompts(points=[(30.0, 4.0)], labels=[1]), axis=Axis.CORONAL)
    assert coronal.mask.shape == volume.slice_shape(Axis.CORONAL)
    # A propagation of one object reports that object only.
    last = run(worker, propagate(6, direction=Direction.FORWARD))[1]
    assert list(last.value.objects) == ["organ"]


def test_a_new_volume_starts_without_memory(worker, predictor, volume):
    run(worker, propagate(SEED, direction=Direction.FORWARD))
    assert answer_to(worker, SetVolume(volume)).kind is MessageKind.RESULT
    again = preview(worker, 6)
    fresh = tiny_session(predictor, volume).add_prompts(6, "organ", CENTRE)
    assert again.score == pytest.approx(fresh.score)


@pytest.mark.parametrize(("policy", "uses_bank"), [("recent", False), ("self-sorting", True)])
def test_the_memory_policy_comes_with_the_volume(worker, volume, monkeypatch, policy, uses_bank):
    updates = []
    upstream = SelfSortingMemoryBank.update
    monkeypatch.setattr(SelfSortingMemoryBank, "update", lambda bank, *a: updates.append(1) or upstream(bank, *a))
    assert answer_to(worker, SetVolume(volume, memory_policy=policy)).kind is MessageKind.RESULT
    last = run(worker, propagate(SEED, direction=Direction.FORWARD))[1]
    assert last.kind is MessageKind.RESULT
    assert bool(updates) is uses_bank


def test_cancel_stops_a_propagation_with_the_slices_reported_so_far(worker, predictor, monkeypatch):
    encode = predictor.forward_image

    def slow_encode(images):
        time.sleep(0.2)
        return encode(images)

    monkeypatch.setattr(predictor, "forward_image", slow_encode)
    request_id = worker.submit(propagate(SEED))
    messages = []
    while not any(m.kind is MessageKind.SLICE for m in messages):
        messages += worker.poll()
        time.sleep(0.01)
    worker.cancel(request_id)
    messages += worker.wait(request_id, timeout=TIMEOUT)
    last = messages[-1]
    assert last.kind is MessageKind.CANCELLED and last.value.cancelled
    outcome = last.value.objects["organ"]
    reported = [m.value.index for m in messages if m.kind is MessageKind.SLICE]
    assert sorted(outcome.slices) == sorted(reported) and len(reported) < SLICES
    assert any(stop.reason == "cancelled" for stop in outcome.stops)
    monkeypatch.undo()
    assert preview(worker, 6).mask.any()  # the session goes on after a cancel


def test_bad_requests_are_reported_and_change_nothing(worker, volume, memory_reads):
    failed = answer_to(worker, SetVolume(volume, memory_policy="oldest"))
    assert failed.kind is MessageKind.ERROR and "Unknown memory policy 'oldest'" in failed.text
    assert "self-sorting" in failed.text
    failed = answer_to(worker, propagate(SEED, slice_range=(0, 2)))
    assert failed.kind is MessageKind.ERROR and "outside the range" in failed.text
    failed = answer_to(worker, Propagate(propagate(SEED).request, stop_rule=KEEP_GOING))
    assert failed.kind is MessageKind.ERROR and "SAM2StopRule" in failed.text
    failed = answer_to(worker, Predict(Axis.AXIAL, SLICES, CENTRE, object_id="organ"))
    assert failed.kind is MessageKind.ERROR and "outside the volume" in failed.text
    # No prompt of the failed propagations stayed on slice 4: a propagation decodes it.
    _messages, last = run(worker, propagate(6, direction=Direction.BACKWARD))
    assert last.kind is MessageKind.RESULT and SEED in [index for index, _ in memory_reads]
    stop_early = Propagate(propagate(6).request, stop_rule=SAM2StopRule(min_area_fraction=1e9))
    assert run(worker, stop_early)[1].value.objects["organ"].slices == [6]


def test_a_missing_checkpoint_says_how_to_get_it(tmp_path):
    with InferenceWorker(WorkerSettings(checkpoint_dir=tmp_path)) as worker:
        failed = answer_to(worker, LoadModel("sam2.1_hiera_tiny", device="cpu"))
        assert failed.kind is MessageKind.ERROR
        assert "not on this computer" in failed.text and "samsegment download sam2.1_hiera_tiny" in failed.text
        failed = answer_to(worker, Predict(Axis.AXIAL, 0, CENTRE))
        assert failed.kind is MessageKind.ERROR and "No model is loaded" in failed.text
