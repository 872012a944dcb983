"""The memory policy wired into a real (tiny, random) SAM 2.1 propagation."""

from __future__ import annotations

import pytest

from SAMSegmentLib.prompts import Prompts
from SAMSegmentLib.propagation import Direction
from SAMSegmentLib.propagation.sam2 import MemoryPolicy, SelfSortingSettings
from SAMSegmentLib.propagation.sam2.memory_bank import IMAGE_KEY, MEMORY_BANK_KEY

pytest.importorskip("sam2")
pytestmark = pytest.mark.sam2

from sam2.modeling.sam2_base import SAM2Base  # noqa: E402
from sam2_tiny import tiny_sam2_predictor, tiny_session  # noqa: E402

CENTRE = Prompts(points=[(32.0, 24.0)], labels=[1])


@pytest.fixture(scope="module")
def predictor():
    return tiny_sam2_predictor(object_score=4.0)


@pytest.fixture
def handed(monkeypatch):
    """slice -> the non-prompted memories (by position) upstream's memory attention was given."""
    seen = {}
    upstream = SAM2Base._prepare_memory_conditioned_features

    def spy(self, **kwargs):
        if not kwargs["is_init_cond_frame"]:
            seen[kwargs["frame_idx"]] = dict(kwargs["output_dict"]["non_cond_frame_outputs"])
        return upstream(self, **kwargs)

    monkeypatch.setattr(SAM2Base, "_prepare_memory_conditioned_features", spy)
    return seen


def run_forward(session):
    session.add_prompts(0, "organ", CENTRE)
    return session.propagate(direction=Direction.FORWARD).run()


def test_the_default_policy_hands_over_the_most_recent_slices(predictor, ct_phantom, handed) -> None:
    session = tiny_session(predictor, ct_phantom)
    run_forward(session)
    stored = session.state["output_dict_per_obj"][0]
    assert MEMORY_BANK_KEY not in stored
    assert not any(IMAGE_KEY in out for out in stored["non_cond_frame_outputs"].values())
    assert set(handed[9]) >= {8, 7, 6, 5, 4, 3}
    assert handed[9][8] is stored["non_cond_frame_outputs"][8]


def test_the_bank_chooses_what_memory_attention_reads(predictor, ct_phantom, handed) -> None:
    settings = SelfSortingSettings(iou_threshold=0.0, capacity=3)
    session = tiny_session(predictor, ct_phantom, memory_policy=MemoryPolicy.SELF_SORTING, bank_settings=settings)
    run_forward(session)
    stored = session.state["output_dict_per_obj"][0]
    bank = stored[MEMORY_BANK_KEY]
    outputs = stored["non_cond_frame_outputs"]
    assert len(bank.memories) == 3
    assert all(outputs[m.frame_index] is m.output for m in bank.memories)
    assert handed[1] == {}  # nothing remembered yet but the prompted slice
    for index in range(2, 12):
        memories = list(handed[index].values())
        # At most `capacity` memories, placed at the positions just behind the slice ...
        assert sorted(handed[index]) == list(range(index - len(memories), index))
        assert 1 <= len(memories) <= 3
        # ... each a stored output of another slice, never the slice itself ...
        assert all(any(out is memory for out in outputs.values()) for memory in memories)
        assert all(memory is not outputs.get(index) for memory in memories)
        # ... nearest first by similarity of the image embeddings to this slice's.
        by_position = [handed[index][position] for position in sorted(handed[index], reverse=True)]
        similarity = [float(m[IMAGE_KEY] @ outputs[index][IMAGE_KEY]) for m in by_position]
        assert similarity == sorted(similarity, reverse=True)


def test_strict_admission_leaves_only_the_prompt_to_remember(predictor, ct_phantom, handed) -> None:
    settings = SelfSortingSettings(iou_threshold=1.0)
    strict = tiny_session(predictor, ct_phantom, memory_policy="self-sorting", bank_settings=settings)
    strict_result = run_forward(strict)
    assert strict.state["output_dict_per_obj"][0][MEMORY_BANK_KEY].memories == []
    assert all(visible == {} for visible in handed.values()) and len(handed) == 11
    # With less memory the same model segments some slices differently.
    recent_result = run_forward(tiny_session(predictor, ct_phantom))
    strict_mask, recent_mask = strict_result.objects["organ"].mask, recent_result.objects["organ"].mask
    assert (strict_mask[0] == recent_mask[0]).all()  # the prompted slice needs no memory
    assert any((strict_mask[k] != recent_mask[k]).any() for k in range(2, 12))


def test_the_bank_needs_sam2s_memory_stride_of_one(ct_phantom) -> None:
    predictor = tiny_sam2_predictor()
    predictor.memory_temporal_stride_for_eval = 2
    with pytest.raises(ValueError, match="stride"):
        tiny_session(predictor, ct_phantom, memory_policy=MemoryPolicy.SELF_SORTING)
    assert tiny_session(predictor, ct_phantom).memory_policy is MemoryPolicy.RECENT


def test_an_unknown_policy_is_refused(predictor, ct_phantom) -> None:
    with pytest.raises(ValueError, match="oldest"):
        tiny_session(predictor, ct_phantom, memory_policy="oldest")
