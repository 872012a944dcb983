"""The stop rule's checks on hand-made predictions: each signal stops, a good slice passes."""

import numpy as np
import pytest
import torch

from SAMSegmentLib.predictor import Prediction
from SAMSegmentLib.propagation import StopRule


def disc(radius, centre=(32, 32), shape=(64, 64)):
    y, x = np.mgrid[: shape[0], : shape[1]]
    return (y - centre[0]) ** 2 + (x - centre[1]) ** 2 <= radius**2


def prediction(mask, score=0.9):
    return Prediction(mask=mask, score=score, scores=np.array([score]), low_res_logits=torch.zeros(4, 4))


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    picture = 0.3 + rng.normal(0, 0.01, (64, 64))
    picture[disc(10)] = 0.7  # a bright object on a darker background
    return picture


def test_a_similar_next_slice_is_accepted_and_becomes_the_reference(image):
    rule = StopRule()
    track = rule.start(prediction(disc(10)), image)
    assert rule.check(track, prediction(disc(9)), image) == ""
    assert track.previous_mask.sum() == disc(9).sum()


@pytest.mark.parametrize(
    "mask, score, expected",
    [
        (np.zeros((64, 64), bool), 0.9, "empty mask"),
        (disc(9), 0.3, "predicted quality 0.30"),
        (disc(1), 0.9, "area collapsed"),
        (disc(8, centre=(12, 50)), 0.9, "mask moved"),
    ],
)
def test_each_end_of_object_signal_stops(image, mask, score, expected):
    rule = StopRule()
    track = rule.start(prediction(disc(10)), image)
    assert expected in rule.check(track, prediction(mask, score), image)


def test_a_mask_over_other_tissue_stops_on_intensity(image):
    rule = StopRule()
    track = rule.start(prediction(disc(10)), image)
    darker = image.copy()
    darker[disc(10)] = 0.3  # the object ended: same place, background tissue
    assert "intensity changed" in rule.check(track, prediction(disc(9)), darker)


def test_absent_needs_low_quality_no_contrast_and_no_edges(image):
    rule = StopRule()
    flat = np.full((64, 64), 0.5) + np.random.default_rng(1).normal(0, 0.01, (64, 64))
    assert rule.absent_reason(prediction(disc(6), 0.6), flat).startswith("absent")
    assert rule.absent_reason(prediction(disc(6), 0.9), flat) == ""  # a confident model is trusted
    assert rule.absent_reason(prediction(disc(10), 0.6), image) == ""  # a visible object is trusted
    assert "found nothing" in rule.absent_reason(prediction(np.zeros((64, 64), bool)), image)


def test_box_margin_grows_with_the_object_but_never_below_the_minimum():
    rule = StopRule(margin_fraction=0.1, min_margin_pixels=2)
    assert rule.box_margin(100, 10) == (10.0, 2.0)
