"""The stop rule with the real LiteMedSAM on synthetic lesions of several sizes and contrasts:
propagation from one box must end where the lesion ends, and a box on plain tissue must not
produce a structure."""

import pytest

from SAMSegmentLib.evaluation import EvaluationSettings, evaluate_structure
from SAMSegmentLib.predictor import VolumePredictor
from SAMSegmentLib.prompts import Prompts
from SAMSegmentLib.propagation import MaskCarryPropagation, ObjectPrompts, PropagationRequest
from SAMSegmentLib.research.phantoms import lesion_volume
from SAMSegmentLib.volume import Axis


@pytest.mark.parametrize("radius, contrast", [(5, 60), (5, -50), (12, 80)])
def test_propagation_stops_within_one_slice_of_a_lesion_end(litemedsam, radius, contrast):
    volume, lesion = lesion_volume(radius, contrast, shape=(24, 64, 64))
    predictor = VolumePredictor(litemedsam)
    predictor.set_volume(volume)
    report = evaluate_structure(predictor, lesion, "lesion", EvaluationSettings())
    print(
        f"lesion r={radius} c={contrast}: Dice {report.dice_3d:.3f}, slices {report.segmented_slices}, "
        f"reference {report.reference_slices}"
    )
    assert report.slices_beyond_reference <= 1
    assert report.dice_3d >= 0.8
    assert all(stop.reason.startswith("object ended") for stop in report.stops)


@pytest.mark.parametrize("pixel_mm", [0.8, 3.0])
def test_a_box_on_plain_tissue_is_reported_absent_not_propagated(litemedsam, pixel_mm):
    # The absence signals are read in mm: the same tissue at 3 mm pixels is judged alike.
    volume, _ = lesion_volume(5, 0.0, shape=(24, 64, 64), spacing=(pixel_mm, pixel_mm, 2.5))
    predictor = VolumePredictor(litemedsam)
    predictor.set_volume(volume)
    request = PropagationRequest(Axis.AXIAL, 12, [ObjectPrompts("nothing", Prompts(box=(24, 24, 39, 39)))])
    outcome = MaskCarryPropagation(predictor, request).run().objects["nothing"]
    print(outcome.stops)
    assert outcome.absent and not outcome.mask.any()
    assert outcome.stops[0].reason.startswith("absent")
    assert predictor.embed_count == 1
