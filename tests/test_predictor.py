import dataclasses

import numpy as np
import pytest
import torch

from SAMSegmentLib.cache import EmbeddingCache
from SAMSegmentLib.errors import InferenceOutOfMemoryError, PromptError
from SAMSegmentLib.predictor import VolumePredictor
from SAMSegmentLib.prompts import Prompts
from SAMSegmentLib.volume import Axis


@pytest.fixture(params=["tiny_sam_model", "tiny_hq_model"])
def tiny_model(request):
    return request.getfixturevalue(request.param)


@pytest.mark.parametrize("axis", list(Axis))
def test_predict_returns_a_full_resolution_mask_on_every_axis(tiny_model, ct_phantom, axis):
    predictor = VolumePredictor(tiny_model)
    predictor.set_volume(ct_phantom)
    height, width = ct_phantom.slice_shape(axis)
    prompts = Prompts(box=(width * 0.3, height * 0.3, width * 0.7, height * 0.7))
    prompts.add_point(width / 2, height / 2)
    prediction = predictor.predict(axis, ct_phantom.slice_count(axis) // 2, prompts)
    assert prediction.mask.shape == (height, width) and prediction.mask.dtype == bool
    assert prediction.scores.shape == (1,)
    assert prediction.low_res_logits.shape == (TINY_LOW_RES, TINY_LOW_RES)


TINY_LOW_RES = 32  # 4x the 8x8 embedding of the 128-pixel tiny models


def test_single_point_gives_three_candidates_and_returns_one_of_them(tiny_sam_model, ct_phantom):
    """Which one: candidate_choice's rule (tests/test_candidate_choice.py), not the best score alone."""
    predictor = VolumePredictor(tiny_sam_model)
    predictor.set_volume(ct_phantom)
    prompts = Prompts()
    prompts.add_point(30, 20)
    prediction = predictor.predict(Axis.AXIAL, 5, prompts)
    assert prediction.scores.shape == (3,)
    assert any(prediction.score == pytest.approx(float(score)) for score in prediction.scores)


def test_hq_sam_fuses_its_best_candidate_with_the_hq_mask(tiny_hq_model, ct_phantom):
    predictor = VolumePredictor(tiny_hq_model)
    predictor.set_volume(ct_phantom)
    prompts = Prompts()
    prompts.add_point(30, 20)
    # HQ-SAM's decoder picks the best of its three candidates itself and adds the HQ token's mask.
    assert predictor.predict(Axis.AXIAL, 5, prompts).scores.shape == (1,)


def test_previous_logits_refine_and_negative_points_are_accepted(tiny_sam_model, ct_phantom):
    predictor = VolumePredictor(tiny_sam_model)
    predictor.set_volume(ct_phantom)
    prompts = Prompts()
    prompts.add_point(30, 20)
    first = predictor.predict(Axis.AXIAL, 5, prompts)
    prompts.add_point(10, 10, positive=False)
    second = predictor.predict(Axis.AXIAL, 5, prompts, mask_logits=first.low_res_logits)
    assert second.mask.shape == first.mask.shape
    assert not torch.equal(first.low_res_logits, second.low_res_logits)


def test_embeddings_are_computed_once_and_cached_per_slice(tiny_sam_model, ct_phantom):
    predictor = VolumePredictor(tiny_sam_model)
    predictor.set_volume(ct_phantom)
    prompts = Prompts(box=(10, 10, 40, 30))
    for _ in range(3):
        predictor.predict(Axis.AXIAL, 4, prompts)
    predictor.predict(Axis.CORONAL, 4, Prompts(box=(10, 2, 40, 8)))
    assert predictor.embed_count == 2
    assert predictor.is_embedded(Axis.AXIAL, 4) and predictor.is_embedded(Axis.CORONAL, 4)
    assert not predictor.is_embedded(Axis.SAGITTAL, 4)


def test_a_small_cache_budget_forces_re_embedding(tiny_sam_model, ct_phantom):
    predictor = VolumePredictor(tiny_sam_model, EmbeddingCache(budget_bytes=1))
    predictor.set_volume(ct_phantom)
    prompts = Prompts(box=(10, 10, 40, 30))
    predictor.predict(Axis.AXIAL, 4, prompts)
    predictor.predict(Axis.AXIAL, 4, prompts)
    assert predictor.embed_count == 2


def test_mask_upsampling_follows_the_box_position(tiny_sam_model, ct_phantom):
    """Logits that are positive over one model-input region land on the matching slice pixels."""
    predictor = VolumePredictor(tiny_sam_model)
    predictor.set_volume(ct_phantom)
    embedding = predictor.embed(Axis.AXIAL, 0)  # 48 x 64 slice -> resized 96 x 128 in a 128 input
    low = torch.full((32, 32), -10.0)
    low[0:12, 16:32] = 10.0  # rows 0..47, columns 64..127 of the model input
    mask = (tiny_sam_model.upsample_logits(low, embedding) > 0).numpy()
    assert mask.shape == (48, 64)
    assert mask[:23, 33:].all() and not mask[26:, :].any() and not mask[:, :31].any()


@pytest.mark.parametrize(
    "prompts, message",
    [
        (Prompts(), "at least one point or a box"),
        (Prompts(points=[(200.0, 5.0)], labels=[1]), "outside the slice"),
        (Prompts(points=[(5.0, -1.0)], labels=[1]), "outside the slice"),
        (Prompts(box=(100.0, 100.0, 140.0, 130.0)), "outside the slice"),
        (Prompts(box=(10.0, 10.0, 10.5, 30.0)), "too small"),
        (Prompts(points=[(5.0, 5.0)], labels=[0]), "Negative points alone"),
    ],
)
def test_bad_prompts_are_clear_errors(tiny_sam_model, ct_phantom, prompts, message):
    predictor = VolumePredictor(tiny_sam_model)
    predictor.set_volume(ct_phantom)
    with pytest.raises(PromptError, match=message):
        predictor.predict(Axis.AXIAL, 3, prompts)
    assert predictor.embed_count == 0  # refused before any model work


def test_box_partly_over_the_edge_is_clipped_not_refused(tiny_sam_model, ct_phantom):
    predictor = VolumePredictor(tiny_sam_model)
    predictor.set_volume(ct_phantom)
    prediction = predictor.predict(Axis.AXIAL, 3, Prompts(box=(-5.0, -5.0, 20.0, 20.0)))
    assert prediction.mask.shape == (48, 64)


def test_out_of_memory_becomes_an_error_that_says_so(tiny_sam_model, ct_phantom, monkeypatch):
    predictor = VolumePredictor(tiny_sam_model)
    predictor.set_volume(ct_phantom)

    def exhausted(image):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(tiny_sam_model, "encode", exhausted)
    with pytest.raises(InferenceOutOfMemoryError, match="ran out of memory"):
        predictor.predict(Axis.AXIAL, 3, Prompts(box=(10, 10, 40, 30)))


def test_litemedsam_refuses_points_with_advice(litemedsam, ct_phantom):
    predictor = VolumePredictor(litemedsam)
    predictor.set_volume(ct_phantom)
    prompts = Prompts()
    prompts.add_point(30, 20)
    with pytest.raises(PromptError, match="only box prompts"):
        predictor.predict(Axis.AXIAL, 3, prompts)


class _RecordingDecoder:
    """Wraps a model's decode, recording the box of every call."""

    def __init__(self, model, monkeypatch):
        self.boxes = []
        self._decode = model.decode
        monkeypatch.setattr(model, "decode", self)

    def __call__(self, embedding, points, labels, box, mask_logits, multimask):
        self.boxes.append(None if box is None else tuple(float(v) for v in box))
        return self._decode(embedding, points, labels, box, mask_logits, multimask)


def test_a_drawn_box_is_decoded_at_each_widening_and_the_logits_averaged(tiny_sam_model, ct_phantom, monkeypatch):
    monkeypatch.setattr(
        tiny_sam_model, "spec", dataclasses.replace(tiny_sam_model.spec, drawn_box_widenings=(0.0, 4.0))
    )
    recorder = _RecordingDecoder(tiny_sam_model, monkeypatch)
    predictor = VolumePredictor(tiny_sam_model)
    predictor.set_volume(ct_phantom)
    height, width = ct_phantom.slice_shape(Axis.AXIAL)
    drawn = predictor.predict(Axis.AXIAL, 5, Prompts(box=(2, 10, 30, 20)))
    # Slice pixels per model input pixel: the longest side was scaled to the model's input.
    per_model_pixel = max(height, width) / tiny_sam_model.input_size
    widened = (2 - 4 * per_model_pixel, 10 - 4 * per_model_pixel, 30 + 4 * per_model_pixel, 20 + 4 * per_model_pixel)
    assert recorder.boxes[0] == (2, 10, 30, 20)
    assert recorder.boxes[1] == pytest.approx((max(0.0, widened[0]), *widened[1:]), abs=0.02)  # cut at the slice edge
    embedding = predictor.embed(Axis.AXIAL, 5)
    as_drawn = recorder._decode
    expected = torch.stack(
        [as_drawn(embedding, None, None, np.array(box), None, False).low_res_logits for box in recorder.boxes]
    ).mean(0)
    assert torch.allclose(drawn.low_res_logits, expected[0], atol=1e-5)

    recorder.boxes.clear()
    predictor.predict(Axis.AXIAL, 5, Prompts(box=(2, 10, 30, 20)), as_given=True)
    with_point = Prompts(box=(2, 10, 30, 20))
    with_point.add_point(15, 15)
    predictor.predict(Axis.AXIAL, 5, with_point)
    assert recorder.boxes == [(2, 10, 30, 20)] * 2  # a carried box, or a box with points: decoded as given


def test_widened_box_is_cut_at_the_slice_edges():
    assert Prompts(box=(1, 2, 8, 9)).widened_box((2, 3), (10, 12)).tolist() == [0, 0, 10, 9]
    assert Prompts().widened_box((2, 3), (10, 12)) is None


def test_propagation_widens_the_drawn_seed_box_only(tiny_sam_model, ct_phantom, monkeypatch):
    """The boxes carried from slice to slice have propagation's margin already: decoded as given."""
    from SAMSegmentLib.propagation import Direction, MaskCarryPropagation, ObjectPrompts, PropagationRequest, StopRule

    monkeypatch.setattr(
        tiny_sam_model, "spec", dataclasses.replace(tiny_sam_model.spec, drawn_box_widenings=(0.0, 2.0, 4.0))
    )
    recorder = _RecordingDecoder(tiny_sam_model, monkeypatch)
    predictor = VolumePredictor(tiny_sam_model)
    predictor.set_volume(ct_phantom)
    request = PropagationRequest(
        Axis.AXIAL, 6, [ObjectPrompts("organ", Prompts(box=(20.0, 15.0, 44.0, 33.0)))], Direction.FORWARD, (6, 9)
    )
    MaskCarryPropagation(predictor, request, StopRule.keep_going()).run()
    seed_box = (20.0, 15.0, 44.0, 33.0)
    # The seed at three widths, once more as drawn (the absent check), then slices 7, 8 and 9 once each.
    assert len(recorder.boxes) == 3 + 1 + 3
    assert recorder.boxes[3] == seed_box and seed_box not in recorder.boxes[4:]
