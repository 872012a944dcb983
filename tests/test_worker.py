"""The inference worker's message protocol: order, superseding, cancel, errors, shutdown."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from test_worker_doubles import KEEP_GOING, OutOfMemoryEncoder, SlowEncoder, answer_to, organ_box, ready_worker

from SAMSegmentLib.predictor import VolumePredictor
from SAMSegmentLib.prompts import Prompts
from SAMSegmentLib.propagation import ObjectPrompts, PropagationRequest, PropagationResult
from SAMSegmentLib.volume import Axis
from SAMSegmentLib.worker import (
    Cancel,
    InferenceWorker,
    LoadModel,
    MessageKind,
    ModelReady,
    Predict,
    Preview,
    Propagate,
    SetVolume,
    VolumeReady,
    WorkerSettings,
)

TIMEOUT = 60


def poll_until(worker: InferenceWorker, done, timeout: float = TIMEOUT) -> list:
    """Poll like the GUI timer until ``done(messages so far)``."""
    messages: list = []
    deadline = time.monotonic() + timeout
    while not done(messages):
        assert time.monotonic() < deadline, f"timed out; got {messages}"
        time.sleep(0.01)
        messages += worker.poll()
    return messages


def final(messages: list, request_id: int):
    (last,) = [m for m in messages if m.request_id == request_id and m.kind.final]
    return last


def propagate(volume, seed: int = 6) -> Propagate:
    objects = [ObjectPrompts("organ", organ_box(volume))]
    return Propagate(PropagationRequest(Axis.AXIAL, seed, objects), stop_rule=KEEP_GOING)


def test_results_come_in_order_with_their_request_ids(tiny_sam_model, ct_phantom):
    with InferenceWorker(WorkerSettings(prefetch_slices=0), loader=lambda request: tiny_sam_model) as worker:
        ids = [
            worker.submit(LoadModel("sam_vit_b", device="cpu")),
            worker.submit(SetVolume(ct_phantom, volume_key="phantom")),
            worker.submit(Predict(Axis.AXIAL, 6, organ_box(ct_phantom))),
            worker.submit(propagate(ct_phantom)),
        ]
        assert ids == sorted(set(ids))
        messages = poll_until(worker, lambda got: any(m.request_id == ids[-1] and m.kind.final for m in got))
        finals = [m for m in messages if m.kind.final]
        assert [m.request_id for m in finals] == ids
        assert all(m.kind is MessageKind.RESULT for m in finals)
        loaded, ready, preview, propagated = (m.value for m in finals)
        assert isinstance(loaded, ModelReady) and loaded.spec.name == "sam_vit_b" and loaded.device == "cpu"
        assert ready == VolumeReady("phantom")
        assert isinstance(preview, Preview) and (preview.axis, preview.index) == (Axis.AXIAL, 6)
        reference = VolumePredictor(tiny_sam_model)
        reference.set_volume(ct_phantom)
        expected = reference.predict(Axis.AXIAL, 6, organ_box(ct_phantom)).mask
        np.testing.assert_array_equal(preview.prediction.mask, expected)
        # Propagation streams its slices before its final message, in the order they were computed.
        streamed = [m for m in messages if m.request_id == ids[-1]]
        slices = [m.value.index for m in streamed if m.kind is MessageKind.SLICE]
        assert streamed[-1].kind is MessageKind.RESULT and isinstance(propagated, PropagationResult)
        assert slices == propagated.objects["organ"].slices and len(slices) == ct_phantom.slice_count(Axis.AXIAL)
        progress = [m.value for m in streamed if m.kind is MessageKind.PROGRESS]
        assert progress[-1] == (len(slices), len(slices))


def test_a_newer_predict_supersedes_the_running_and_queued_ones(tiny_sam_model, ct_phantom):
    model = SlowEncoder(tiny_sam_model, seconds=0.3)
    with ready_worker(model, ct_phantom, prefetch_slices=0) as worker:
        running = worker.submit(Predict(Axis.AXIAL, 3, organ_box(ct_phantom)))
        assert model.started.wait(TIMEOUT)
        queued = worker.submit(Predict(Axis.AXIAL, 4, organ_box(ct_phantom)))
        latest = worker.submit(Predict(Axis.AXIAL, 5, organ_box(ct_phantom)))
        messages = worker.wait(latest, timeout=TIMEOUT)
        assert [(m.request_id, m.kind) for m in messages] == [
            (queued, MessageKind.STALE),  # dropped at once, without running
            (running, MessageKind.STALE),  # computed, but not delivered
            (latest, MessageKind.RESULT),
        ]
        assert all(m.value is None for m in messages[:2])
        assert worker.wait_idle(TIMEOUT)
        assert worker.predictor.is_embedded(Axis.AXIAL, 3) and worker.predictor.is_embedded(Axis.AXIAL, 5)
        assert not worker.predictor.is_embedded(Axis.AXIAL, 4)


def test_a_refinement_can_send_the_previous_logits_back_as_a_numpy_copy(tiny_sam_model, ct_phantom):
    with ready_worker(tiny_sam_model, ct_phantom, prefetch_slices=0) as worker:
        prompts = Prompts()
        prompts.add_point(32, 24)
        first = answer_to(worker, Predict(Axis.AXIAL, 6, prompts)).value.prediction
        prompts.add_point(10, 10, positive=False)
        logits = first.low_res_logits.numpy().astype(np.float64)  # what a GUI keeps between clicks
        refined = answer_to(worker, Predict(Axis.AXIAL, 6, prompts, mask_logits=logits))
        assert refined.kind is MessageKind.RESULT
        assert not np.array_equal(refined.value.prediction.low_res_logits.numpy(), first.low_res_logits.numpy())


def test_cancel_stops_a_propagation_within_one_slice_with_a_consistent_partial_result(tiny_sam_model, ct_phantom):
    model = SlowEncoder(tiny_sam_model, seconds=0.1)
    with ready_worker(model, ct_phantom, prefetch_slices=0) as worker:
        request_id = worker.submit(propagate(ct_phantom))
        messages = poll_until(worker, lambda got: sum(m.kind is MessageKind.SLICE for m in got) >= 3)
        cancelled_at = time.monotonic()
        cancel_id = worker.submit(Cancel(request_id))
        messages += poll_until(worker, lambda got: any(m.request_id == request_id and m.kind.final for m in got))
        assert final(messages, cancel_id).value == (request_id,)
        last = final(messages, request_id)
        assert last.kind is MessageKind.CANCELLED
        result: PropagationResult = last.value
        assert result.cancelled
        assert sum(start > cancelled_at for start in model.starts) <= 1
        reported = [m.value.index for m in messages if m.request_id == request_id and m.kind is MessageKind.SLICE]
        organ = result.objects["organ"]
        assert organ.slices == reported and len(reported) < ct_phantom.slice_count(Axis.AXIAL)
        masked = np.flatnonzero(organ.mask.any(axis=(1, 2)))
        assert set(masked) <= set(reported)
        assert any(stop.reason == "cancelled" for stop in organ.stops)


def test_cancel_drops_a_queued_request_at_once(tiny_sam_model, ct_phantom):
    model = SlowEncoder(tiny_sam_model, seconds=0.2)
    with ready_worker(model, ct_phantom, prefetch_slices=0) as worker:
        running = worker.submit(propagate(ct_phantom))
        queued = worker.submit(Predict(Axis.AXIAL, 2, organ_box(ct_phantom)))
        assert model.started.wait(TIMEOUT)
        cancel_id = worker.cancel(queued)
        messages = worker.poll()
        assert [(m.request_id, m.kind) for m in messages if m.kind.final] == [
            (queued, MessageKind.CANCELLED),
            (cancel_id, MessageKind.RESULT),
        ]
        everything = worker.cancel()
        messages = worker.wait(running, timeout=TIMEOUT)
        assert final(messages, everything).value == (running,)
        assert messages[-1].kind is MessageKind.CANCELLED and messages[-1].value.cancelled


def test_a_model_load_that_has_started_is_not_cancelled(tiny_sam_model):
    started = threading.Event()

    def slow_loader(request):
        started.set()
        time.sleep(0.3)
        return tiny_sam_model

    with InferenceWorker(loader=slow_loader) as worker:
        loading = worker.submit(LoadModel("sam_vit_b"))
        queued = worker.submit(LoadModel("sam_vit_b"))
        assert started.wait(TIMEOUT)
        cancel_id = worker.cancel()
        messages = worker.wait(loading, timeout=TIMEOUT)
        assert final(messages, cancel_id).value == (queued,)
        assert final(messages, queued).kind is MessageKind.CANCELLED
        assert final(messages, loading).kind is MessageKind.RESULT  # the worker holds this model now


def test_an_error_is_reported_and_the_next_request_still_works(tiny_sam_model, ct_phantom):
    with ready_worker(tiny_sam_model, ct_phantom, prefetch_slices=0) as worker:
        height, width = ct_phantom.slice_shape(Axis.AXIAL)
        outside = Prompts()
        outside.add_point(width + 5, height / 2)
        failed = answer_to(worker, Predict(Axis.AXIAL, 6, outside))
        assert failed.kind is MessageKind.ERROR and "outside the slice" in failed.text and failed.value is None
        assert answer_to(worker, Predict(Axis.AXIAL, 6, organ_box(ct_phantom))).kind is MessageKind.RESULT


def test_an_unexpected_exception_names_its_type_and_is_logged(tiny_sam_model, caplog):
    models = iter([RuntimeError("the GPU driver fell over"), tiny_sam_model])

    def flaky_loader(request):
        model = next(models)
        if isinstance(model, Exception):
            raise model
        return model

    with InferenceWorker(WorkerSettings(prefetch_slices=0), loader=flaky_loader) as worker:
        failed = answer_to(worker, LoadModel("sam_vit_b"))
        assert failed.kind is MessageKind.ERROR and failed.text == "RuntimeError: the GPU driver fell over"
        assert any(record.exc_info for record in caplog.records)
        assert answer_to(worker, LoadModel("sam_vit_b")).kind is MessageKind.RESULT


def test_segmenting_before_a_model_or_volume_is_loaded_says_what_is_missing(tiny_sam_model, ct_phantom):
    with InferenceWorker(loader=lambda request: tiny_sam_model) as worker:
        failed = answer_to(worker, Predict(Axis.AXIAL, 6, organ_box(ct_phantom)))
        assert failed.kind is MessageKind.ERROR and "No model is loaded" in failed.text
        worker.submit(LoadModel("sam_vit_b"))
        failed = answer_to(worker, propagate(ct_phantom))
        assert failed.kind is MessageKind.ERROR and "No volume is loaded" in failed.text


def test_out_of_memory_has_its_own_message_and_the_cpu_model_works_after_it(tiny_sam_model, ct_phantom):
    on_small_gpu = OutOfMemoryEncoder(tiny_sam_model)
    with InferenceWorker(
        WorkerSettings(prefetch_slices=0),
        loader=lambda request: on_small_gpu if request.device == "cuda" else tiny_sam_model,
    ) as worker:
        worker.submit(LoadModel("sam_vit_b", device="cuda"))
        worker.submit(SetVolume(ct_phantom))
        failed = answer_to(worker, Predict(Axis.AXIAL, 6, organ_box(ct_phantom)))
        assert failed.kind is MessageKind.OUT_OF_MEMORY and "out of memory" in failed.text
        worker.submit(LoadModel("sam_vit_b", device="cpu"))  # what the GUI offers next
        assert answer_to(worker, Predict(Axis.AXIAL, 6, organ_box(ct_phantom))).kind is MessageKind.RESULT


def test_shutdown_cancels_what_is_queued_and_joins_the_thread(tiny_sam_model, ct_phantom):
    model = SlowEncoder(tiny_sam_model, seconds=0.1)
    worker = ready_worker(model, ct_phantom, prefetch_slices=0)
    running = worker.submit(propagate(ct_phantom))
    queued = worker.submit(Predict(Axis.AXIAL, 2, organ_box(ct_phantom)))
    assert model.started.wait(TIMEOUT)
    assert worker.shutdown(timeout=TIMEOUT)
    assert not worker.is_alive
    finals = {m.request_id: m.kind for m in worker.poll() if m.kind.final}
    assert finals == {queued: MessageKind.CANCELLED, running: MessageKind.CANCELLED}
    with pytest.raises(RuntimeError, match="shut down"):
        worker.submit(Predict(Axis.AXIAL, 2, organ_box(ct_phantom)))


def test_only_requests_are_accepted(tiny_sam_model):
    with InferenceWorker(loader=lambda request: tiny_sam_model) as worker:
        with pytest.raises(TypeError, match="cannot serve a str"):
            worker.submit("segment please")  # type: ignore[arg-type]
