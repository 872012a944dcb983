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
