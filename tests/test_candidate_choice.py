"""The rule that picks one of SAM's candidate masks for an ambiguous click, on synthetic slices."""

import numpy as np
import torch

from SAMSegmentLib.candidate_choice import (
    BODY_FRACTION_LIMIT,
    CandidateQualities,
    body_mask,
    candidate_qualities,
    choose_candidate,
)
from SAMSegmentLib.predictor import VolumePredictor
from SAMSegmentLib.prompts import Prompts
from SAMSegmentLib.volume import Axis

SIZE = 64


def _disc(radius: float, centre=(32, 32)) -> np.ndarray:
    y, x = np.mgrid[:SIZE, :SIZE]
    return (x - centre[0]) ** 2 + (y - centre[1]) ** 2 <= radius**2


def _slice_with_organ() -> np.ndarray:
    """A body (disc of radius 28) on dark background, a brighter organ (radius 6) at (32, 32) inside
    it and a dark hole (a lung, radius 5) at (20, 40)."""
    image = np.where(_disc(28), 0.5, 0.0)
    image[_disc(6)] = 0.8
    image[_disc(5, centre=(20, 40))] = 0.02
    return image


def _logits(*masks: np.ndarray, sharpness: float = 10.0) -> torch.Tensor:
    return torch.as_tensor(np.stack([np.where(m, sharpness, -sharpness) for m in masks]), dtype=torch.float32)


def test_the_body_is_what_the_background_from_the_border_does_not_reach():
    image = _slice_with_organ()
    body = body_mask(image)
    assert np.array_equal(body, _disc(28))  # the dark lung inside is part of the body
    assert body_mask(np.full((SIZE, SIZE), 0.6)).all()  # no background: the slice is the body
    assert not body_mask(np.zeros((SIZE, SIZE))).any()


def test_the_best_scored_body_loses_to_the_structure():
    image = _slice_with_organ()
    organ, body = _disc(6), _disc(28)
    qualities = candidate_qualities(
        _logits(_disc(3), organ, body), torch.tensor([0.80, 0.90, 0.99]), image, np.array([[32.0, 32.0]]), np.array([1])
    )
    assert qualities.body_fraction[2] > BODY_FRACTION_LIMIT > qualities.body_fraction[1]
    assert choose_candidate(qualities) == 1


def test_a_candidate_must_contain_the_positive_click_and_exclude_the_negative_one():
    image = _slice_with_organ()
    qualities = candidate_qualities(
        _logits(_disc(6, centre=(45, 20)), _disc(6), _disc(10)),
        torch.tensor([0.99, 0.80, 0.85]),
        image,
        np.array([[32.0, 32.0], [40.0, 32.0]]),
        np.array([1, 0]),
    )
    assert qualities.agrees_with_clicks.tolist() == [False, True, False]
    assert choose_candidate(qualities) == 1


def test_unstable_candidates_lose_to_stable_ones_of_similar_predicted_iou():
    image = _slice_with_organ()
    stable = _logits(_disc(6))[0]
    leaky = torch.as_tensor(np.where(_disc(6), 10.0, np.where(_disc(12), -0.5, -10.0)), dtype=torch.float32)
    qualities = candidate_qualities(
        torch.stack([leaky, stable]), torch.tensor([0.92, 0.90]), image, np.array([[32.0, 32.0]]), np.array([1])
    )
    assert qualities.stability[1] > qualities.stability[0]
    assert choose_candidate(qualities) == 1


def test_when_every_candidate_fails_a_test_the_test_is_waived():
    qualities = CandidateQualities(
        predicted_iou=np.array([0.9, 0.7, 0.8]),
        stability=np.ones(3),
        agrees_with_clicks=np.array([False, False, False]),
        body_fraction=np.array([0.9, 0.95, 0.99]),
    )
    assert choose_candidate(qualities) == 0


def test_the_predictor_returns_the_rules_candidate_for_one_click(tiny_sam_model, ct_phantom):
    predictor = VolumePredictor(tiny_sam_model)
    predictor.set_volume(ct_phantom)
    index = ct_phantom.slice_count(Axis.AXIAL) // 2
    height, width = ct_phantom.slice_shape(Axis.AXIAL)
    prompts = Prompts()
    prompts.add_point(width / 2, height / 2)
    prediction = predictor.predict(Axis.AXIAL, index, prompts)

    embedding = predictor.embed(Axis.AXIAL, index)
    decoded = tiny_sam_model.decode(embedding, prompts.points_array(), prompts.labels_array(), None, None, True)
    candidates = tiny_sam_model.upsample_logits(decoded.low_res_logits, embedding)
    chosen = choose_candidate(
        candidate_qualities(
            candidates,
            decoded.scores,
            predictor.slice_image(Axis.AXIAL, index),
            prompts.points_array(),
            prompts.labels_array(),
        )
    )
    assert np.array_equal(prediction.mask, (candidates[chosen] > 0).numpy())
    assert prediction.score == float(decoded.scores[chosen])
