"""The stop-rule calibration harness on hand-made walks: where each rule stops, the Dice and the
slices beyond or short of the reference it reports, and the search's choice."""

import math
from dataclasses import replace

import numpy as np

from SAMSegmentLib.propagation import StopRule
from SAMSegmentLib.propagation.stop_rule import SliceEvidence
from SAMSegmentLib.research.calibration import WalkTable, calibrate, legacy_rule
from SAMSegmentLib.research.calibration_walks import StructureWalk, WalkStep


def step(index, area, hits, score=0.9, overlap=0.8, shift=0.5, **recorded):
    evidence = {
        "score": score,
        "area_mm2": area * 9.0,
        "area_fraction": area / 100.0,
        "overlap": overlap,
        "area_growth": 1.0,
        "intensity_shift": shift,
        "intensity_change": shift * 0.05,
        "legacy_shift": shift,
        **recorded,
    }
    return WalkStep(index, area, hits, evidence)


def lesion_walk(dataset="set-a", name="lesion"):
    """A structure on slices 4..6 of 10 (seed 5), the walk running on past both ends with low scores."""
    return StructureWalk(
        dataset,
        name,
        "soft_tissue",
        slice_count=10,
        seed=5,
        seed_score=0.95,
        seed_area=100,
        seed_hits=90,
        reference_voxels=260,
        reference_first=4,
        reference_last=6,
        oracle_area=0,
        oracle_hits=0,
        seed_spread=0.05,
        forward=[step(6, 80, 75), step(7, 60, 0, score=0.3), step(8, 40, 0, score=0.2)],
        backward=[step(4, 80, 75), step(3, 50, 0, score=0.35, shift=5.0), WalkStep(2, 0, 0, None)],
    )


def test_a_rule_that_refuses_low_scores_stops_at_the_lesion_ends():
    table = WalkTable.of([lesion_walk()])
    measures = table.measures(StopRule(min_score=0.5, max_intensity_shift=math.inf, min_overlap=0.0))
    assert measures["last"].tolist() == [[6, 4]]
    assert measures["beyond"].tolist() == [[0, 0]] and measures["short"].tolist() == [[0, 0]]
    assert np.isclose(measures["dice"][0], 2 * (90 + 75 + 75) / (100 + 80 + 80 + 260))
    assert np.isclose(table.summary(StopRule(min_score=0.5))["mean_gap_to_best_stop"], 0.0)


def test_a_lenient_rule_runs_past_the_ends_and_is_counted():
    table = WalkTable.of([lesion_walk()])
    lenient = StopRule(min_score=-math.inf, max_intensity_shift=math.inf, min_overlap=0.0, min_area_fraction=0.0)
    measures = table.measures(lenient)
    assert measures["last"].tolist() == [[8, 3]]  # the empty mask on slice 2 always stops
    assert measures["beyond"].tolist() == [[2, 1]]
    summary = table.summary(lenient)
    assert summary["ends_more_than_one_beyond"] == 1 and summary["max_beyond"] == 2
    assert summary["mean_gap_to_best_stop"] > 0.05


def test_the_intensity_shift_alone_stops_the_backward_direction():
    table = WalkTable.of([lesion_walk()])
    rule = StopRule(min_score=-math.inf, max_intensity_shift=2.0, min_overlap=0.0, min_area_fraction=0.0)
    assert table.measures(rule)["last"].tolist() == [[8, 4]]
    # A floor on the seed's spread (0.05 here) twice as high halves the shift: 5 -> 2.5 still stops, at 4 not.
    assert table.measures(replace(rule, min_intensity_spread=0.1))["last"].tolist() == [[8, 4]]
    assert table.measures(replace(rule, min_intensity_spread=0.2))["last"].tolist() == [[8, 3]]


def test_the_replay_allows_intensity_drift_as_the_rule_does():
    walk = lesion_walk()
    rule = StopRule(min_score=-math.inf, max_intensity_shift=2.0, min_overlap=0.0, intensity_drift_mm=2.0)
    for likeness, last in ((0.9, 3), (0.5, 4), (None, 4)):  # 5 spreads at 6 mm: 2 + 6 / 2 spreads allowed if seen
        walk.backward[1] = step(3, 50, 0, score=0.35, shift=5.0, distance_mm=6.0, likeness=likeness)
        assert WalkTable.of([walk]).measures(rule)["last"].tolist() == [[8, last]]
        evidence = {key: value for key, value in walk.backward[1].evidence.items() if key != "legacy_shift"}
        refused = "intensity" in rule.judge(SliceEvidence(**evidence))
        assert refused == (last == 4)
    # Walks recorded before the distance was kept replay as before: no allowance.
    assert WalkTable.of([lesion_walk()]).measures(rule)["last"].tolist() == [[8, 4]]


def test_calibrate_prefers_the_rule_that_stops_at_the_ends_and_checks_each_set_left_out():
    walks = [lesion_walk("set-a", "one"), lesion_walk("set-b", "two")]
    grid = {"min_score": (-math.inf, 0.5), "max_intensity_shift": (math.inf, 2.0), "min_overlap": (0.0, 0.4)}
    record = calibrate(walks, StopRule(), grid)
    assert record["variants_tried"] == 8
    assert record["chosen_summary"]["all"]["ends_more_than_one_beyond"] == 0
    assert record["chosen_summary"]["all"]["mean_gap_to_best_stop"] == 0.0
    assert set(record["leave_one_dataset_out"]) == {"set-a", "set-b"}
    assert record["before"]["thresholds"]["min_score"] == legacy_rule().min_score
    assert len(record["structures"]) == 2 and "before" in record["structures"][0]


def test_the_replay_stops_where_the_mask_moved_toward_the_surroundings_as_the_rule_does():
    walk = lesion_walk()
    rule = StopRule(min_score=-math.inf, max_intensity_shift=2.0, min_overlap=0.0, intensity_drift_mm=2.0)
    # At 2 mm the share allowed grows from 0.5 to 0.75 where the encoder sees the object. None: walks
    # recorded before 2026-12-01, and objects not standing apart from their surroundings.
    for toward, likeness, last in ((None, None, 3), (0.4, None, 3), (0.6, None, 4), (0.6, 0.9, 3)):
        walk.backward[1] = step(3, 50, 0, distance_mm=2.0, likeness=likeness, toward_surroundings=toward)
        assert WalkTable.of([walk]).measures(rule)["last"].tolist() == [[8, last]]
        evidence = {key: value for key, value in walk.backward[1].evidence.items() if key != "legacy_shift"}
        refused = "surroundings" in rule.judge(SliceEvidence(**evidence))
        assert refused == (last == 4)
    # Recorded with its separation: refused only where object and surroundings stand apart enough.
    for separation, last in ((3.0, 3), (5.0, 4)):
        walk.backward[1] = step(3, 50, 0, distance_mm=2.0, toward_surroundings=0.6, surroundings_separation=separation)
        assert WalkTable.of([walk]).measures(rule)["last"].tolist() == [[8, last]]


def test_the_replay_stops_where_the_encoder_sees_none_of_the_object_as_the_rule_does():
    walk = lesion_walk()
    rule = StopRule(min_score=-math.inf, max_intensity_shift=2.0, min_overlap=0.0)
    cases = (  # (likeness, shift, overlap): refused only when all three say the object has gone
        (0.05, 0.5, 0.6),
        (0.5, 0.5, 0.6),
        (None, 0.5, 0.6),
        (0.05, 0.1, 0.6),
        (0.05, 0.5, 0.95),
    )
    for number, (likeness, shift, overlap) in enumerate(cases):
        walk.backward[1] = step(3, 50, 0, shift=shift, overlap=overlap, distance_mm=2.0, likeness=likeness)
        evidence = {key: value for key, value in walk.backward[1].evidence.items() if key != "legacy_shift"}
        refused = "see none of the object" in rule.judge(SliceEvidence(**evidence))
        assert refused == (number == 0)
        assert WalkTable.of([walk]).measures(rule)["last"].tolist() == [[8, 4 if refused else 3]]
