"""The calibration's walks with the real LiteMedSAM: a walk is the engine's own propagation, run past
the object's end, so a stop rule replayed on the record stops where the engine stops with it."""

import numpy as np
import pytest

from SAMSegmentLib.evaluation.protocols import box_from_reference, largest_slice
from SAMSegmentLib.metrics import dice
from SAMSegmentLib.predictor import VolumePredictor
from SAMSegmentLib.propagation import MaskCarryPropagation, ObjectPrompts, PropagationRequest, StopRule
from SAMSegmentLib.research.calibration import WalkTable
from SAMSegmentLib.research.calibration_walks import AXIS, walk_structure
from SAMSegmentLib.research.phantoms import lesion_volume


def test_the_shipped_rule_replayed_on_a_walk_stops_where_the_engine_does(litemedsam):
    volume, lesion = lesion_volume(10, 80, shape=(24, 64, 64))
    predictor = VolumePredictor(litemedsam)
    predictor.set_volume(volume, "soft_tissue")
    walk = walk_structure(predictor, lesion, "phantom", "lesion", StopRule(), oracle=False)

    seed = largest_slice(lesion, AXIS)
    request = PropagationRequest(AXIS, seed, [ObjectPrompts("lesion", box_from_reference(lesion[seed]))])
    engine = MaskCarryPropagation(predictor, request, StopRule()).run().objects["lesion"]
    replayed = WalkTable.of([walk]).outcomes(StopRule())[0]

    present = np.flatnonzero(lesion.any(axis=(1, 2)))
    assert walk.forward[-1].index == present.max() + 4  # walked on past the end, as far as asked
    assert walk.backward[-1].index == present.min() - 4
    assert len(walk.forward) + len(walk.backward) + 1 > len(engine.slices)
    assert all(step.evidence["likeness"] is not None for step in walk.forward + walk.backward)
    assert replayed["ends"]["forward"]["last_slice"] == max(engine.slices)
    assert replayed["ends"]["backward"]["last_slice"] == min(engine.slices)
    assert replayed["dice"] == pytest.approx(dice(engine.mask, lesion), abs=1e-4)
