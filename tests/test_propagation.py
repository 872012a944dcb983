"""Mask-carrying propagation: directions, ranges, several objects, cancel, progress, no double embedding.

These use the tiny random SAM with a stop rule that never stops on quality, so the walk is
decided by the range and the code paths alone; the stop rule is tested on its own below and
with real weights in test_stop_rule_real.py.
"""

import threading
import time

import numpy as np
import pytest
from synthetic import make_ct_phantom
from test_worker_doubles import SlowEncoder

from SAMSegmentLib.predictor import VolumePredictor
from SAMSegmentLib.prompts import Prompts
from SAMSegmentLib.propagation import (
    CancelToken,
    Direction,
    MaskCarryPropagation,
    ObjectPrompts,
    PropagationRequest,
    StopRule,
)
from SAMSegmentLib.volume import Axis

KEEP_GOING = StopRule.keep_going()


@pytest.fixture
def predictor(tiny_sam_model, ct_phantom):
    predictor = VolumePredictor(tiny_sam_model)
    predictor.set_volume(ct_phantom)
    return predictor


def request(direction=Direction.BOTH, slice_range=None, objects=("organ",)):
    boxes = [(20.0, 15.0, 44.0, 33.0), (5.0, 5.0, 20.0, 20.0)]
    return PropagationRequest(
        Axis.AXIAL,
        6,
        [ObjectPrompts(name, Prompts(box=boxes[n])) for n, name in enumerate(objects)],
        direction,
        slice_range,
    )


@pytest.mark.parametrize(
    "direction, expected",
    [(Direction.BOTH, list(range(12))), (Direction.FORWARD, list(range(6, 12))), (Direction.BACKWARD, list(range(7)))],
)
def test_directions_cover_the_expected_slices_and_stop_at_the_volume_end(predictor, direction, expected):
    result = MaskCarryPropagation(predictor, request(direction), KEEP_GOING).run()
    outcome = result.objects["organ"]
    covered = [k for k in range(12) if outcome.mask[k].any()]
    assert sorted(outcome.slices) == expected
    assert set(covered) <= set(expected)
    assert all(stop.reason == "reached the end of the range" for stop in outcome.stops)
    assert {stop.direction for stop in outcome.stops} == {
        d for d in ("forward", "backward") if direction in (Direction.BOTH, Direction(d))
    }


def test_slice_range_limits_the_walk(predictor):
    outcome = MaskCarryPropagation(predictor, request(slice_range=(4, 8)), KEEP_GOING).run().objects["organ"]
    assert sorted(outcome.slices) == [4, 5, 6, 7, 8]
    assert not outcome.mask[:4].any() and not outcome.mask[9:].any()


@pytest.mark.parametrize(
    "held, slice_range, gap",
    [
        ([9, 10, 11], None, (0, 8)),  # stopped early going forward: fill up to it
        ([0, 1, 10], None, (2, 9)),  # between two segmented runs
        ([0, 1, 10], (4, 11), (4, 9)),  # within the range asked for
        ([], (3, 8), (3, 8)),  # nothing segmented yet: the range as asked
        ([], None, None),
        ([5, 6, 7], (2, 9), (2, 9)),  # the seed slice is segmented: replace as before
    ],
)
def test_filling_a_gap_keeps_the_walk_off_the_segmented_slices(held, slice_range, gap):
    existing = np.zeros((12, 4, 5), bool)
    existing[held, 1, 3] = True
    assert request(slice_range=slice_range).filling_gap(existing).slice_range == gap


def test_the_gap_is_found_along_the_propagation_axis():
    existing = np.zeros((12, 4, 5), bool)
    existing[2:9, 1, 3] = True  # on sagittal slice 3 only
    sagittal = PropagationRequest(Axis.SAGITTAL, 0, [])
    assert sagittal.filling_gap(existing).slice_range == (0, 2)
    assert PropagationRequest(Axis.CORONAL, 0, []).filling_gap(existing).slice_range == (0, 0)


def test_a_seed_outside_the_range_is_refused(predictor):
    with pytest.raises(ValueError, match="outside the range"):
        MaskCarryPropagation(predictor, request(slice_range=(8, 10)), KEEP_GOING)


@pytest.mark.slow  # propagates several objects through the volume
def test_each_slice_is_embedded_once_for_all_objects_and_both_directions(predictor):
    propagation = MaskCarryPropagation(predictor, request(objects=("a", "b")), KEEP_GOING)
    results = list(propagation)
    assert propagation.result.embedded_slices == 12 == predictor.embed_count
    assert {r.object_id for r in results} == {"a", "b"}
    assert sorted(propagation.result.objects["b"].slices) == list(range(12))
    # Running again finds every slice in the cache.
    again = MaskCarryPropagation(predictor, request(), KEEP_GOING).run()
    assert again.embedded_slices == 0


def test_results_stream_slice_by_slice_and_match_the_final_volume(predictor):
    propagation = MaskCarryPropagation(predictor, request(), KEEP_GOING)
    for result in propagation:
        assert np.array_equal(propagation.result.objects["organ"].mask[result.index], result.mask)


def test_progress_reports_every_slice_against_the_plan(predictor):
    calls = []
    MaskCarryPropagation(
        predictor, request(slice_range=(3, 9)), KEEP_GOING, progress=lambda done, total: calls.append((done, total))
    ).run()
    assert calls == [(n, 7) for n in range(1, 8)]


def test_cancel_stops_within_one_slice_with_a_consistent_partial_result(predictor):
    cancel = CancelToken()
    propagation = MaskCarryPropagation(predictor, request(Direction.FORWARD), KEEP_GOING, cancel=cancel)
    seen = []
    for result in propagation:
        seen.append(result.index)
        if len(seen) == 3:
            cancel.cancel()
    outcome = propagation.result.objects["organ"]
    assert propagation.result.cancelled
    assert seen == [6, 7, 8] and sorted(outcome.slices) == seen
    assert [k for k in range(12) if outcome.mask[k].any()] == [k for k in seen if outcome.mask[k].any()]
    assert outcome.stops[-1].reason == "cancelled" and outcome.stops[-1].last_index == 8
    assert predictor.embed_count == 3  # nothing embedded after the cancel


def test_cancel_before_start_does_nothing(predictor):
    cancel = CancelToken()
    cancel.cancel()
    propagation = MaskCarryPropagation(predictor, request(), KEEP_GOING, cancel=cancel)
    assert list(propagation) == [] and propagation.result.cancelled and predictor.embed_count == 0


def test_cancel_interrupts_the_encoder_call_of_the_next_slice(tiny_sam_model, ct_phantom):
    # The next slice's encoder call would outlast the test unless the cancel interrupts it.
    model = SlowEncoder(tiny_sam_model, seconds=0.0, background_seconds=60.0)
    predictor = VolumePredictor(model)
    predictor.set_volume(ct_phantom)
    cancel = CancelToken()
    propagation = MaskCarryPropagation(predictor, request(Direction.FORWARD), KEEP_GOING, cancel=cancel)
    threading.Thread(target=_cancel_once_encoding, args=(model, cancel), daemon=True).start()
    results = list(propagation)
    assert model.interrupted == 1
    assert propagation.result.cancelled
    assert [r.index for r in results] == [6]  # the seed only: its neighbour was being embedded
    outcome = propagation.result.objects["organ"]
    assert outcome.stops[-1].reason == "cancelled" and outcome.stops[-1].last_index == 6
    assert outcome.slices == [6] and not outcome.mask[7].any()


def test_a_zooming_model_embeds_each_objects_window_of_a_large_slice(zooming_tiny_model):
    """The seed slice is embedded whole once for all objects, and in the window around each
    object's box; two objects far apart need a window each."""
    volume = make_ct_phantom((12, 300, 400))
    predictor = VolumePredictor(zooming_tiny_model)
    predictor.set_volume(volume)
    near, far = Prompts(box=(190.0, 140.0, 210.0, 160.0)), Prompts(box=(20.0, 20.0, 40.0, 40.0))
    objects = [ObjectPrompts("near", near), ObjectPrompts("far", far)]
    propagation = MaskCarryPropagation(
        predictor, PropagationRequest(Axis.AXIAL, 6, objects, Direction.FORWARD), KEEP_GOING
    )
    assert {r.index for r in propagation if r.object_id == "near"} == set(range(6, 12))
    near_window, far_window = predictor.views(Axis.AXIAL, near)[0], predictor.views(Axis.AXIAL, far)[0]
    assert near_window is not None and far_window is not None and near_window != far_window
    assert all(predictor.is_embedded(Axis.AXIAL, 6, view) for view in (near_window, far_window, None))
    assert all(predictor.is_embedded(Axis.AXIAL, index) for index in range(6, 12))
    assert propagation.result.embedded_slices == predictor.embed_count


def _cancel_once_encoding(model, cancel):
    deadline = time.monotonic() + 60
    while len(model.starts) < 2 and time.monotonic() < deadline:  # the seed, then slice 7
        time.sleep(0.01)
    cancel.cancel()
