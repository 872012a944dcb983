"""Background embedding of neighbouring slices while the worker is idle."""

from __future__ import annotations

import time

import pytest
from synthetic import make_ct_phantom
from test_worker_doubles import KEEP_GOING, SlowEncoder, answer_to, organ_box, ready_worker

from SAMSegmentLib.prompts import Prompts
from SAMSegmentLib.propagation import Direction, ObjectPrompts, PropagationRequest
from SAMSegmentLib.volume import Axis
from SAMSegmentLib.worker import MessageKind, Predict, Propagate, SetVolume, neighbour_order

TIMEOUT = 60
SEED = 6


@pytest.mark.parametrize(
    ("seed", "count", "slice_count", "expected"),
    [
        (6, 4, 12, [7, 5, 8, 4]),
        (6, 5, 12, [7, 5, 8, 4, 9]),
        (0, 3, 12, [1, 2, 3]),  # nothing below the first slice: the count goes upwards
        (10, 4, 12, [11, 9, 8, 7]),
        (1, 10, 3, [2, 0]),  # the whole volume is fewer slices than asked for
        (4, 0, 12, []),
    ],
)
def test_neighbours_alternate_around_the_seed_within_the_volume(seed, count, slice_count, expected):
    assert neighbour_order(seed, count, slice_count) == expected


def embedded(worker, axis: Axis = Axis.AXIAL) -> set[int]:
    return {i for i in range(12) if worker.predictor.is_embedded(axis, i)}


def test_prefetched_slices_are_the_ones_propagation_finds_in_the_cache(tiny_sam_model, ct_phantom):
    with ready_worker(tiny_sam_model, ct_phantom, prefetch_slices=4) as worker:
        assert answer_to(worker, Predict(Axis.AXIAL, SEED, organ_box(ct_phantom))).kind is MessageKind.RESULT
        assert worker.wait_idle(TIMEOUT)
        assert embedded(worker) == {SEED, 7, 5, 8, 4}
        request = PropagationRequest(Axis.AXIAL, SEED, [ObjectPrompts("organ", organ_box(ct_phantom))])
        result = answer_to(worker, Propagate(request, stop_rule=KEEP_GOING)).value
        propagated = result.objects["organ"].slices
        assert len(propagated) == 12
        assert result.embedded_slices == len(set(propagated) - {SEED, 7, 5, 8, 4})


def test_prefetch_stops_short_of_the_cache_budget(tiny_sam_model, ct_phantom):
    slice_bytes = tiny_sam_model.encode(ct_phantom.slice_2d(Axis.AXIAL, 0) / 1.0).nbytes
    with ready_worker(tiny_sam_model, ct_phantom, prefetch_slices=8, cache_budget_bytes=3 * slice_bytes) as worker:
        answer_to(worker, Predict(Axis.AXIAL, SEED, organ_box(ct_phantom)))
        assert worker.wait_idle(TIMEOUT)
        # Room for three: the prompted slice and the two nearest, none evicted by prefetching.
        assert embedded(worker) == {SEED, 7, 5}


def test_a_volume_with_a_focus_slice_is_embedded_there_first(tiny_sam_model, ct_phantom):
    model = SlowEncoder(tiny_sam_model, seconds=0.0)
    with ready_worker(model, ct_phantom, prefetch_slices=2) as worker:
        answer_to(worker, SetVolume(ct_phantom, volume_key="again", focus=(Axis.CORONAL, 20)))
        assert worker.wait_idle(TIMEOUT)
        assert [i for i in range(48) if worker.predictor.is_embedded(Axis.CORONAL, i)] == [19, 20, 21]
        assert len(model.starts) == 3


def test_prefetch_can_be_turned_off(tiny_sam_model, ct_phantom):
    with ready_worker(tiny_sam_model, ct_phantom, prefetch_slices=0) as worker:
        answer_to(worker, Predict(Axis.AXIAL, SEED, organ_box(ct_phantom)))
        assert worker.wait_idle(TIMEOUT)
        assert embedded(worker) == {SEED}


def test_a_zooming_model_prefetches_the_neighbours_whole_and_in_the_prompted_window(zooming_tiny_model):
    volume = make_ct_phantom((12, 300, 400))
    box = Prompts(box=(190.0, 140.0, 210.0, 160.0))
    with ready_worker(zooming_tiny_model, volume, prefetch_slices=4) as worker:
        answer_to(worker, Predict(Axis.AXIAL, SEED, box))
        assert worker.wait_idle(TIMEOUT)
        window = worker.predictor.views(Axis.AXIAL, box)[0]
        assert window is not None and embedded(worker) == {SEED, 7, 5, 8, 4}
        assert {i for i in range(12) if worker.predictor.is_embedded(Axis.AXIAL, i, window)} == {SEED, 7, 5, 8, 4}


def _wait_for_encoder_calls(model: SlowEncoder, count: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    while len(model.starts) < count:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_request_during_prefetch_interrupts_the_encoder_call_in_flight(tiny_sam_model, ct_phantom):
    # Prefetching the next slice would outlast the test.
    model = SlowEncoder(tiny_sam_model, seconds=0.0, background_seconds=TIMEOUT)
    with ready_worker(model, ct_phantom, prefetch_slices=1) as worker:
        answer_to(worker, Predict(Axis.AXIAL, SEED, organ_box(ct_phantom)))
        _wait_for_encoder_calls(model, 2)  # the seed, then prefetching its neighbour
        answer = answer_to(worker, Predict(Axis.AXIAL, SEED, organ_box(ct_phantom)))
        assert answer.kind is MessageKind.RESULT
        assert model.interrupted == 1
        _wait_for_encoder_calls(model, 3)  # prefetching started over after the click...
    assert model.interrupted == 2  # ...and shutting down interrupted it too, instead of waiting


def test_a_predict_on_the_slice_being_prefetched_waits_for_it_instead(tiny_sam_model, ct_phantom):
    model = SlowEncoder(tiny_sam_model, seconds=0.0, background_seconds=0.5)
    with ready_worker(model, ct_phantom, prefetch_slices=1) as worker:
        answer_to(worker, Predict(Axis.AXIAL, SEED, organ_box(ct_phantom)))
        _wait_for_encoder_calls(model, 2)  # slice SEED + 1 is being embedded
        answer = answer_to(worker, Predict(Axis.AXIAL, SEED + 1, organ_box(ct_phantom)))
        assert answer.kind is MessageKind.RESULT
        assert worker.wait_idle(TIMEOUT)
        assert model.interrupted == 0
        # SEED and SEED + 1 once each, then SEED + 2: the neighbour of the new prompt.
        assert len(model.ends) == 3
        assert embedded(worker) == {SEED, SEED + 1, SEED + 2}


@pytest.mark.parametrize(
    ("direction", "slice_range", "interrupted"),
    [
        (Direction.BOTH, None, 0),  # it needs the slice being embedded: it waits for it
        (Direction.FORWARD, (SEED, SEED + 3), 0),
        (Direction.BACKWARD, None, 1),  # below the seed only: the slice above is not needed
        (Direction.BOTH, (SEED - 3, SEED), 1),
    ],
)
def test_a_propagation_interrupts_prefetching_only_of_a_slice_it_will_not_use(
    tiny_sam_model, ct_phantom, direction, slice_range, interrupted
):
    # Long enough for the propagation to arrive while slice SEED + 1 is being embedded.
    model = SlowEncoder(tiny_sam_model, seconds=0.0, background_seconds=2.0)
    with ready_worker(model, ct_phantom, prefetch_slices=1) as worker:
        answer_to(worker, Predict(Axis.AXIAL, SEED, organ_box(ct_phantom)))
        _wait_for_encoder_calls(model, 2)
        request = PropagationRequest(
            Axis.AXIAL, SEED, [ObjectPrompts("organ", organ_box(ct_phantom))], direction, slice_range
        )
        propagation = worker.submit(Propagate(request, stop_rule=KEEP_GOING))
        model.background_seconds = 0.0  # for the propagation's own encoder calls; the one in flight keeps its time
        assert worker.wait(propagation, timeout=TIMEOUT)[-1].kind is MessageKind.RESULT
        assert model.interrupted == interrupted
