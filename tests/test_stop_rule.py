"""The stop rule's checks on hand-made predictions: each signal stops, a good slice passes."""

import math

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
    rule = StopRule(min_area_fraction=0.02)
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


def test_a_box_read_as_drawn_is_absent_only_when_its_own_mask_does_not_stand_out_either(image):
    rule = StopRule()
    flat = np.full((64, 64), 0.5) + np.random.default_rng(1).normal(0, 0.01, (64, 64))
    unsure_on_flat = prediction(disc(6), 0.6)
    # The box as drawn found nothing standing out: the averaged mask decides whether it does.
    assert rule.absent_reason(prediction(disc(7), 0.7), flat, as_drawn=unsure_on_flat).startswith("absent")
    bright_object = flat.copy()
    bright_object[disc(10)] = 0.9
    assert (
        rule.absent_reason(prediction(disc(10), 0.7), bright_object, as_drawn=prediction(disc(3) ^ disc(2), 0.5)) == ""
    )
    # As drawn it is present: the signals are read on it, as calibrated.
    assert rule.absent_reason(prediction(disc(7), 0.6), flat, as_drawn=prediction(disc(6), 0.9)) == ""
    assert "found nothing" in rule.absent_reason(prediction(np.zeros((64, 64), bool)), flat, as_drawn=unsure_on_flat)


def test_box_margin_has_floors_in_mm_and_pixels_and_grows_with_the_object():
    rule = StopRule(margin_fraction=0.1, min_margin_mm=3.0, min_margin_pixels=2.0)
    assert rule.box_margin(100, 10, spacing_xy=(1.0, 0.5)) == (10.0, 6.0)  # 3 mm = 6 pixels of 0.5 mm
    assert rule.box_margin(100, 10, spacing_xy=(3.0, 3.0)) == (10.0, 2.0)  # 3 mm is 1 pixel: 2 pixels


def test_the_area_floor_is_in_square_millimetres(image):
    rule = StopRule(min_area_mm2=20.0, min_area_fraction=0.0, min_overlap=0.0)
    track = rule.start(prediction(disc(10)), image, spacing_xy=(0.5, 0.5))
    assert "mm^2" in rule.check(track, prediction(disc(2)), image)  # 13 pixels of 0.25 mm^2
    track = rule.start(prediction(disc(10)), image, spacing_xy=(3.0, 3.0))
    assert rule.check(track, prediction(disc(2)), image) == ""  # the same pixels are 117 mm^2


def test_a_mask_that_balloons_into_a_neighbour_stops(image):
    rule = StopRule(max_area_growth=2.0)
    track = rule.start(prediction(disc(10)), image)
    assert rule.check(track, prediction(disc(12)), image) == ""
    assert "area grew" in rule.check(track, prediction(disc(20)), image)


def test_intensity_may_drift_with_the_distance_walked_where_the_object_still_looks_like_itself(image):
    rule = StopRule(max_intensity_shift=2.0, intensity_drift_mm=60.0, drift_min_likeness=0.8)
    drifted = image.copy()
    drifted[disc(10)] += 2.5 * rule.min_intensity_spread  # 2.5 spreads from the uniform seed
    track = rule.start(prediction(disc(10)), image, slice_spacing_mm=3.0)
    assert "intensity changed" in rule.check(track.copy(), prediction(disc(10)), drifted, likeness=1.0)  # 3 mm on
    for _ in range(11):
        assert rule.check(track, prediction(disc(10)), image) == ""
    assert track.walked_mm == 33.0
    # At 36 mm the limit is 2.6 spreads, where the encoder still sees the object.
    assert "intensity changed" in rule.check(track.copy(), prediction(disc(10)), drifted, likeness=None)
    assert "intensity changed" in rule.check(track.copy(), prediction(disc(10)), drifted, likeness=0.5)
    assert rule.check(track, prediction(disc(10)), drifted, likeness=0.9) == ""
    assert track.walked_mm == 36.0


def faint(object_value, background_noise=0.005):
    """A uniform disc at ``object_value`` on background 0.5 (at 0.56: 0.06 above it, under the spread floor)."""
    picture = 0.5 + np.random.default_rng(2).normal(0, background_noise, (64, 64))
    picture[disc(10)] = object_value
    return picture


def test_a_faint_object_ends_where_its_mask_looks_like_its_surroundings():
    rule = StopRule()
    track = rule.start(prediction(disc(10)), faint(0.56))
    plain = faint(0.5)  # the object ended: its place holds the surroundings' tissue
    assert "of the way to its surroundings'" in rule.check(track.copy(), prediction(disc(9)), plain)
    # The shift check alone (its floor of 0.05 a spread) lets the mask run on over plain tissue.
    assert StopRule(max_toward_surroundings=math.inf).check(track.copy(), prediction(disc(9)), plain) == ""
    # The same change away from the surroundings is not a move toward them.
    assert rule.check(track.copy(), prediction(disc(9)), faint(0.62)) == ""


def test_the_surroundings_check_needs_an_object_that_stands_apart_from_them():
    rule = StopRule()
    noisy = faint(0.56, background_noise=0.02)  # 0.06 is under 4 of the surroundings' spreads
    track = rule.start(prediction(disc(10)), noisy)
    evidence = rule.measure(track, prediction(disc(9)), faint(0.5, background_noise=0.02))
    assert evidence.toward_surroundings == pytest.approx(1.0, abs=0.2)  # all the way there, but
    assert evidence.surroundings_separation < rule.surroundings_min_separation
    assert rule.judge(evidence) == ""


def test_the_share_toward_the_surroundings_grows_with_the_walk_where_the_object_looks_like_itself():
    rule = StopRule(intensity_drift_mm=60.0, drift_min_likeness=0.8)
    track = rule.start(prediction(disc(10)), faint(0.56), slice_spacing_mm=60.0)
    two_thirds = faint(0.52)  # 2/3 of the way; at 60 mm the limit is 0.5 * (2 + 1) / 2 = 0.75
    assert "surroundings" in rule.check(track.copy(), prediction(disc(10)), two_thirds, likeness=None)
    assert rule.check(track, prediction(disc(10)), two_thirds, likeness=0.9) == ""


def test_a_mask_the_encoder_sees_none_of_the_object_in_ends_where_its_outline_and_intensity_moved():
    rule = StopRule()
    track = rule.start(prediction(disc(10)), faint(0.56))
    moved = faint(0.5)
    moved[disc(10)] = 0.56 - 0.3 * rule.min_intensity_spread  # 0.3 spreads from the seed's median
    assert "see none of the object" in rule.check(track.copy(), prediction(disc(7)), moved, likeness=0.05)
    # Each condition is needed: the encoder seeing some of the object, the outline held (a vessel,
    # whose look to the encoder changes along it), or the intensity as it was.
    assert rule.check(track.copy(), prediction(disc(7)), moved, likeness=0.3) == ""
    assert rule.check(track.copy(), prediction(disc(7)), moved, likeness=None) == ""
    assert rule.check(track.copy(), prediction(disc(10)), moved, likeness=0.05) == ""
    assert rule.check(track.copy(), prediction(disc(7)), faint(0.56), likeness=0.05) == ""
    assert StopRule.keep_going().check(track.copy(), prediction(disc(7)), moved, likeness=0.0) == ""


def test_a_few_pixels_of_another_tissue_do_not_shift_the_robust_intensity(image):
    rule = StopRule(max_intensity_shift=1.5)
    track = rule.start(prediction(disc(10)), image)
    speckled = image.copy()
    speckled[disc(10) & (np.arange(64)[None, :] % 7 == 0)] = 0.0  # a seventh of the mask turns dark
    assert rule.check(track, prediction(disc(10)), speckled) == ""


def _scene(pixel_mm):
    """A disc of 15 mm radius on a ramp, darker beyond 24 mm, sampled at ``pixel_mm``: the same
    anatomy at two resolutions."""
    size = round(96 / pixel_mm)
    y, x = (np.mgrid[:size, :size] + 0.5) * pixel_mm
    inside = (y - 48) ** 2 + (x - 48) ** 2 <= 15**2
    picture = 0.3 + 0.4 * x / 96 + 0.15 * inside - 0.2 * (((y - 48) ** 2 + (x - 48) ** 2) > 24**2)
    return picture, inside


def test_the_absence_signals_are_read_at_a_physical_scale():
    rule = StopRule()
    # The same scene at 0.5 and 1 mm pixels (both finer than the rule's 1 mm gradient scale).
    fine, fine_mask = _scene(0.5)
    coarse, coarse_mask = _scene(1.0)
    fine_evidence = rule.seed_evidence(prediction(fine_mask), fine, (0.5, 0.5))
    coarse_evidence = rule.seed_evidence(prediction(coarse_mask), coarse, (1.0, 1.0))
    assert coarse_evidence.contrast == pytest.approx(fine_evidence.contrast, rel=0.15)
    assert coarse_evidence.edge == pytest.approx(fine_evidence.edge, rel=0.25)
    # The ring is 3 mm: 1 pixel at 3 mm stays inside an object reaching 2 pixels past the mask,
    # 3 pixels at 1 mm reach the background beyond it.
    flat_object = np.full((64, 64), 0.3)
    flat_object[disc(8)] = 0.7
    assert rule.boundary_contrast(disc(6), flat_object, (3.0, 3.0)) < 0.1
    assert rule.boundary_contrast(disc(6), flat_object, (1.0, 1.0)) > 1.0


def test_judging_absence_from_evidence_matches_reading_it_from_the_slice(image):
    rule = StopRule()
    flat = np.full((64, 64), 0.5) + np.random.default_rng(1).normal(0, 0.01, (64, 64))
    seed, as_drawn = prediction(disc(7), 0.7), prediction(disc(6), 0.6)
    assert rule.judge_absence(
        rule.seed_evidence(seed, flat, (0.8, 0.8)), rule.seed_evidence(as_drawn, flat, (0.8, 0.8))
    ) == rule.absent_reason(seed, flat, as_drawn, (0.8, 0.8))
    assert not rule.seed_evidence(prediction(np.zeros((64, 64), bool)), flat).found
