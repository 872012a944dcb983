import numpy as np
import pytest

from SAMSegmentLib.evaluation import EvaluationSettings, box_from_reference, evaluate_structure, largest_slice
from SAMSegmentLib.evaluation.clicks import interior_point, next_click
from SAMSegmentLib.predictor import VolumePredictor
from SAMSegmentLib.volume import Axis


def test_largest_slice_and_its_box():
    reference = np.zeros((5, 20, 30), bool)
    reference[1, 5:8, 5:9] = True
    reference[3, 2:12, 4:20] = True
    assert largest_slice(reference, Axis.AXIAL) == 3
    assert box_from_reference(reference[3]).box == (4.0, 2.0, 19.0, 11.0)
    assert largest_slice(reference, Axis.SAGITTAL) in range(5, 9)


def test_first_click_is_the_point_farthest_from_the_boundary():
    y, x = np.mgrid[:30, :40]
    region = (x - 25) ** 2 + (y - 12) ** 2 <= 64
    region[12, 17:34] = True  # a spur must not attract the click
    assert interior_point(region) == (25.0, 12.0)
    edge = np.zeros((10, 10), bool)
    edge[:, :3] = True  # touching the image border still counts as a boundary
    assert interior_point(edge)[0] == 1.0


def test_next_click_targets_the_largest_error_with_the_right_sign():
    reference = np.zeros((40, 40), bool)
    reference[5:30, 5:30] = True
    missed_much = reference.copy()
    missed_much[5:30, 5:15] = False  # a large miss on the left
    x, y, positive = next_click(missed_much, reference)
    assert positive and 5 <= x < 15 and 5 <= y < 30
    extra = reference.copy()
    extra[32:40, 0:40] = True  # a larger leak below
    x, y, positive = next_click(extra, reference)
    assert not positive and y >= 32
    assert next_click(reference, reference) is None


def test_click_protocol_records_a_curve_and_propagates(tiny_sam_model, ct_phantom):
    predictor = VolumePredictor(tiny_sam_model)
    predictor.set_volume(ct_phantom)
    reference = ct_phantom.array > 100
    report = evaluate_structure(predictor, reference, "organ", EvaluationSettings(protocol="clicks", clicks=3))
    assert 1 <= len(report.click_curve) <= 3
    assert [step.clicks for step in report.click_curve] == list(range(1, len(report.click_curve) + 1))
    assert all(step.dice_3d is not None and 0 <= step.dice_3d <= 1 for step in report.click_curve)
    assert report.mask.shape == reference.shape
    assert report.to_json()["click_curve"][0]["clicks"] == 1


def test_box_protocol_without_propagation_segments_only_the_seed(tiny_sam_model, ct_phantom):
    predictor = VolumePredictor(tiny_sam_model)
    predictor.set_volume(ct_phantom)
    reference = ct_phantom.array > 100
    report = evaluate_structure(predictor, reference, "organ", EvaluationSettings(propagate=False))
    assert set(np.nonzero(report.mask.any(axis=(1, 2)))[0]) <= {report.seed_index}
    assert report.stops == [] and predictor.embed_count == 1


def test_an_empty_reference_is_refused(tiny_sam_model, ct_phantom):
    predictor = VolumePredictor(tiny_sam_model)
    predictor.set_volume(ct_phantom)
    with pytest.raises(ValueError, match="no voxels"):
        evaluate_structure(predictor, np.zeros(ct_phantom.array.shape, bool), "x", EvaluationSettings())
