"""The seed-absence calibration harness on hand-made examples: what a rule keeps and drops, and the
search's ranking (no kept structure lost first, then the most plain-tissue boxes judged absent)."""

import math

import numpy as np
import torch

from SAMSegmentLib.predictor import Prediction
from SAMSegmentLib.propagation import StopRule
from SAMSegmentLib.research.seed_absence import Example, evidence, outcome, search


def _disc(radius):
    y, x = np.mgrid[:64, :64]
    return (y - 32) ** 2 + (x - 32) ** 2 <= radius**2


def _example(kind, image, score, dice_2d=None):
    prediction = Prediction(mask=_disc(8), score=score, scores=np.array([score]), low_res_logits=torch.zeros(4, 4))
    return Example("a model", kind, "hand-made", kind, image, (1.0, 1.0), prediction, prediction, dice_2d)


def _examples():
    rng = np.random.default_rng(0)
    plain = 0.5 + rng.normal(0, 0.02, (64, 64))
    organ = plain.copy()
    organ[_disc(8)] += 0.3
    faint = plain.copy()
    faint[_disc(8)] += 0.02  # a structure the model segments well, though it barely stands out
    return [
        _example("kept", organ, 0.6, 0.9),
        _example("kept", faint, 0.6, 0.8),
        _example("plain", plain, 0.6),
        _example("kept", plain, 0.6, 0.1),
    ]


def test_outcome_counts_kept_structures_lost_and_plain_boxes_dropped():
    examples = _examples()
    table = evidence(StopRule(), examples)
    lenient = outcome(StopRule(absent_score=0.0), examples, table)
    assert lenient["kept_judged_absent"] == [] and lenient["plain_judged_absent"] == 0
    strict = outcome(StopRule(absent_contrast=math.inf, absent_edge=math.inf), examples, table)
    assert strict["kept_judged_absent"] == ["a model, hand-made: kept", "a model, hand-made: kept"]
    assert strict["plain_judged_absent"] == 1
    assert strict["seed_dice_lost"] == 1.8  # the kept structure the model missed (Dice 0.1) counts, but is not "lost"


def test_the_search_ranks_keeping_every_structure_before_dropping_plain_boxes():
    best = search(_examples())[0]
    assert best["kept_judged_absent"] == []
    assert best["plain_judged_absent"] == 1
