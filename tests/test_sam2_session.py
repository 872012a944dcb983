"""SAM 2 sessions with a tiny random SAM 2.1: prompts, directions, ranges, objects, stops, cancel."""

from __future__ import annotations

import numpy as np
import pytest

from SAMSegmentLib.errors import PromptError
from SAMSegmentLib.prompts import Prompts
from SAMSegmentLib.propagation import CancelToken, Direction, ObjectPrompts, PropagationRequest
from SAMSegmentLib.propagation.sam2 import SAM2StopRule
from SAMSegmentLib.volume import Axis

pytest.importorskip("sam2")
pytestmark = pytest.mark.sam2

from sam2_tiny import tiny_sam2_predictor, tiny_session  # noqa: E402

SEED = 6
CENTRE = Prompts(points=[(32.0, 24.0)], labels=[1])
SLICES = 12  # the phantom's axial slices


@pytest.fixture(scope="module")
def predictor():
    return tiny_sam2_predictor(object_score=4.0)


@pytest.fixture
def session(predictor, ct_phantom):
    return tiny_session(predictor, ct_phantom)


def propagate(session, **options):
    session.add_prompts(SEED, "organ", CENTRE)
    propagation = session.propagate(**options)
    yielded = list(propagation)
    return propagation.result, yielded


def test_a_prompt_gives_a_mask_of_the_slice_and_a_score(session) -> None:
    result = session.add_prompts(SEED, "organ", Prompts(box=(20, 14, 44, 34)))
    assert result.object_id == "organ" and result.index == SEED
    assert result.mask.shape == (48, 64) and result.mask.dtype == bool and result.mask.any()
    assert 0.0 <= result.score <= 1.0
    assert session.object_ids == ["organ"]


def test_both_directions_from_one_session_cover_the_volume_once_each(session, ct_phantom) -> None:
    result, yielded = propagate(session)
    outcome = result.objects["organ"]
    assert [r.index for r in yielded] == [6, 7, 8, 9, 10, 11, 5, 4, 3, 2, 1, 0]
    assert sorted(outcome.slices) == list(range(SLICES)) and not outcome.absent
    assert outcome.mask.shape == ct_phantom.array.shape
    for item in yielded:
        assert np.array_equal(outcome.mask[item.index], item.mask)
    assert [(s.direction, s.last_index) for s in outcome.stops] == [("forward", 11), ("backward", 0)]
    assert all(s.reason == "reached the end of the range" for s in outcome.stops)
    # The prompt encoded the seed; propagation encodes each other slice once.
    assert result.embedded_slices == SLICES - 1
    assert not result.cancelled


def test_forward_only_and_backward_only(predictor, ct_phantom) -> None:
    result, yielded = propagate(tiny_session(predictor, ct_phantom), direction=Direction.FORWARD)
    assert [r.index for r in yielded] == [6, 7, 8, 9, 10, 11]
    assert [s.direction for s in result.objects["organ"].stops] == ["forward"]
    result, yielded = propagate(tiny_session(predictor, ct_phantom), direction=Direction.BACKWARD)
    assert [r.index for r in yielded] == [6, 5, 4, 3, 2, 1, 0]
    assert not result.objects["organ"].mask[7:].any()


def test_a_backward_walk_from_the_first_slice_still_segments_it(session) -> None:
    session.add_prompts(0, "organ", CENTRE)
    result = session.propagate(direction=Direction.BACKWARD).run()
    assert result.objects["organ"].slices == [0]


def test_a_slice_range_bounds_both_directions(session) -> None:
    result, yielded = propagate(session, slice_range=(4, 8))
    assert sorted(r.index for r in yielded) == [4, 5, 6, 7, 8]
    outcome = result.objects["organ"]
    assert [(s.direction, s.last_index) for s in outcome.stops] == [("forward", 8), ("backward", 4)]
    assert not outcome.mask[:4].any() and not outcome.mask[9:].any()
    with pytest.raises(ValueError, match="outside the range"):
        session.propagate(slice_range=(0, 3))


def test_progress_counts_every_slice_once(session) -> None:
    calls = []
    propagate(session, slice_range=(3, 9), progress=lambda done, planned: calls.append((done, planned)))
    assert calls == [(done, 7) for done in range(1, 8)]


def test_several_objects_propagate_together(session) -> None:
    session.add_prompts(SEED, "left", Prompts(points=[(20.0, 24.0)], labels=[1]))
    session.add_prompts(SEED, "right", Prompts(box=(36, 14, 50, 34)))
    propagation = session.propagate(direction=Direction.FORWARD)
    yielded = [(r.object_id, r.index) for r in propagation]
    assert yielded == [(name, index) for index in range(SEED, SLICES) for name in ("left", "right")]
    assert set(propagation.result.objects) == {"left", "right"}
    for outcome in propagation.result.objects.values():
        assert outcome.slices == list(range(SEED, SLICES))
    # Each slice was encoded once for both objects.
    assert propagation.result.embedded_slices == SLICES - 1 - SEED


def test_a_request_adds_its_prompts_and_propagates_from_its_seed(session) -> None:
    request = PropagationRequest(Axis.AXIAL, 3, [ObjectPrompts("organ", CENTRE)], Direction.FORWARD, (0, 5))
    result = session.propagate_request(request).run()
    assert result.objects["organ"].slices == [3, 4, 5]


def test_a_bad_request_changes_nothing(session) -> None:
    bad = [ObjectPrompts("a", CENTRE), ObjectPrompts("b", Prompts(points=[(500.0, 5.0)], labels=[1]))]
    with pytest.raises(PromptError, match="outside the slice"):
        session.propagate_request(PropagationRequest(Axis.AXIAL, SEED, bad))
    with pytest.raises(ValueError, match="axial"):
        session.propagate_request(PropagationRequest(Axis.CORONAL, SEED, [ObjectPrompts("a", CENTRE)]))
    with pytest.raises(PromptError, match="outside the volume"):
        session.add_prompts(SLICES, "a", CENTRE)
    assert session.object_ids == []
    with pytest.raises(PromptError, match="Add prompts"):
        session.propagate()


def test_a_stop_ends_one_direction_at_the_last_accepted_slice(session) -> None:
    # No later slice can reach this area, so each direction stops right after the seed.
    result, yielded = propagate(session, stop_rule=SAM2StopRule(min_area_fraction=1e9))
    outcome = result.objects["organ"]
    assert [r.index for r in yielded] == [SEED] and outcome.slices == [SEED]
    assert [(s.direction, s.last_index) for s in outcome.stops] == [("forward", SEED), ("backward", SEED)]
    assert all("area collapsed" in s.reason for s in outcome.stops)
    assert result.embedded_slices == 2  # one refused slice per direction, nothing beyond


def test_an_absent_structure_is_reported_not_propagated(ct_phantom) -> None:
    session = tiny_session(tiny_sam2_predictor(object_score=-4.0), ct_phantom)
    seed = session.add_prompts(SEED, "organ", CENTRE)
    assert not seed.mask.any()
    propagation = session.propagate()
    assert list(propagation) == []
    outcome = propagation.result.objects["organ"]
    assert outcome.absent and not outcome.mask.any()
    assert [(s.direction, s.last_index) for s in outcome.stops] == [("forward", None), ("backward", None)]
    assert all("no object" in s.reason for s in outcome.stops)
    assert propagation.result.embedded_slices == 0


def test_cancel_stops_before_the_next_slice(session) -> None:
    cancel = CancelToken()
    session.add_prompts(SEED, "organ", CENTRE)
    propagation = session.propagate(cancel=cancel, progress=lambda done, planned: cancel.cancel())
    yielded = list(propagation)
    result = propagation.result
    assert [r.index for r in yielded] == [SEED] and result.cancelled
    assert [(s.direction, s.last_index, s.reason) for s in result.objects["organ"].stops] == [
        ("forward", SEED, "cancelled"),
        ("backward", None, "cancelled"),
    ]
    assert result.embedded_slices == 0


def test_reset_forgets_objects_and_memory(session) -> None:
    propagate(session, direction=Direction.FORWARD)
    session.reset()
    assert session.object_ids == [] and session.last_prompted_index is None
    with pytest.raises(PromptError):
        session.propagate()


def test_auto_intensity_is_decided_at_the_first_prompt_and_kept(predictor) -> None:
    from test_intensity import lung_and_abdomen_ct

    volume = lung_and_abdomen_ct()
    session = tiny_session(predictor, volume)
    assert session.frames.mapping.preset == "soft_tissue"  # before a prompt: the CT's window
    session.add_prompts(3, "nodule", Prompts(box=(40, 24, 55, 39)))  # mostly lung around it
    assert session.frames.mapping.preset == "percentile"
    session.add_prompts(3, "organ", Prompts(box=(4, 20, 23, 39)))  # soft tissue: the decision stays
    assert session.frames.mapping.preset == "percentile"
    forced = tiny_session(predictor, volume, intensity="soft_tissue")
    forced.add_prompts(3, "nodule", Prompts(box=(40, 24, 55, 39)))
    assert forced.frames.mapping.preset == "soft_tissue"
