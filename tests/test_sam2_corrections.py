"""Corrections after a SAM 2 propagation keep the memory built so far."""

from __future__ import annotations

import numpy as np
import pytest

from SAMSegmentLib.prompts import Prompts
from SAMSegmentLib.propagation import Direction

pytest.importorskip("sam2")
pytestmark = pytest.mark.sam2

from sam2.modeling.sam2_base import SAM2Base  # noqa: E402
from sam2_tiny import tiny_sam2_predictor, tiny_session  # noqa: E402

SEED, CORRECTED = 6, 9
CENTRE = Prompts(points=[(32.0, 24.0)], labels=[1])


@pytest.fixture(scope="module")
def predictor():
    return tiny_sam2_predictor(object_score=4.0)


@pytest.fixture
def memory_reads(monkeypatch):
    """(slice, is a first prompt, non-prompted outputs visible to memory attention) per call."""
    reads = []
    upstream = SAM2Base._prepare_memory_conditioned_features

    def spy(self, **kwargs):
        outputs = kwargs["output_dict"]["non_cond_frame_outputs"]
        reads.append((kwargs["frame_idx"], kwargs["is_init_cond_frame"], dict(outputs)))
        return upstream(self, **kwargs)

    monkeypatch.setattr(SAM2Base, "_prepare_memory_conditioned_features", spy)
    return reads


def test_a_correction_is_propagated_with_the_memory_of_the_first_run(predictor, ct_phantom, memory_reads) -> None:
    session = tiny_session(predictor, ct_phantom)
    session.add_prompts(SEED, "organ", CENTRE)
    session.propagate().run()
    outputs = session.state["output_dict_per_obj"][0]
    first_run = dict(outputs["non_cond_frame_outputs"])
    assert sorted(first_run) == [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11]

    memory_reads.clear()
    negative = Prompts(points=[(32.0, 24.0), (10.0, 40.0)], labels=[1, 0])
    correction = session.add_prompts(CORRECTED, "organ", negative)
    # The correction itself was decoded with memory, not as a fresh first prompt.
    assert [(index, first) for index, first, _ in memory_reads] == [(CORRECTED, False)]

    memory_reads.clear()
    result = session.propagate(direction=Direction.FORWARD).run()  # from the corrected slice
    outcome = result.objects["organ"]
    assert outcome.slices == [9, 10, 11]
    assert np.array_equal(outcome.mask[CORRECTED], correction.mask)  # the correction is kept
    assert result.embedded_slices == 2

    # Both prompted slices are conditioning memory now; the first run's other slices are
    # still in the state, untouched, and slice 10 read its neighbours 8 and 7 from them.
    assert sorted(outputs["cond_frame_outputs"]) == [SEED, CORRECTED]
    for index in (0, 1, 2, 3, 4, 5, 7, 8):
        assert outputs["non_cond_frame_outputs"][index] is first_run[index]
    for index in (10, 11):
        assert outputs["non_cond_frame_outputs"][index] is not first_run[index]
    reads = {index: visible for index, _, visible in memory_reads}
    assert reads[10][8] is first_run[8] and reads[10][7] is first_run[7]


def test_a_positive_point_on_a_slice_the_first_run_missed_adds_it(predictor, ct_phantom) -> None:
    session = tiny_session(predictor, ct_phantom)
    session.add_prompts(SEED, "organ", CENTRE)
    first = session.propagate(slice_range=(4, 8)).run()
    assert sorted(first.objects["organ"].slices) == [4, 5, 6, 7, 8]
    added = session.add_prompts(10, "organ", Prompts(points=[(30.0, 20.0)], labels=[1]))
    assert added.mask.any()
    second = session.propagate(direction=Direction.BOTH, slice_range=(8, 11)).run()
    assert sorted(second.objects["organ"].slices) == [8, 9, 10, 11]
    assert sorted(session.state["output_dict_per_obj"][0]["cond_frame_outputs"]) == [SEED, 10]
