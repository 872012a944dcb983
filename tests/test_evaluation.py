import copy
import dataclasses
import itertools
import json
import pickle

import numpy as np
import pytest
import SimpleITK as sitk

from SAMSegmentLib.datasets import CaseFiles, find_cases, load_labelled_case
from SAMSegmentLib.evaluation import (
    EvaluationSettings,
    box_from_reference,
    evaluate_case,
    evaluate_challenge,
    evaluate_oracle,
    evaluate_structure,
    largest_slice,
    middle_slice,
    next_click,
    runner,
)
from SAMSegmentLib.evaluation.clicks import interior_point
from SAMSegmentLib.evaluation.runner import ERASED, GAP_FILLED, RESEGMENTED, UNCHANGED, _widened
from SAMSegmentLib.predictor import VolumePredictor
from SAMSegmentLib.prompts import Prompts
from SAMSegmentLib.propagation import ObjectResult
from SAMSegmentLib.registry import PromptKind
from SAMSegmentLib.research.sitk_images import image_on_grid
from SAMSegmentLib.volume import Axis


def test_largest_slice_and_its_box():
    reference = np.zeros((5, 20, 30), bool)
    reference[1, 5:8, 5:9] = True
    reference[3, 2:12, 4:20] = True
    assert largest_slice(reference, Axis.AXIAL) == 3
    assert box_from_reference(reference[3]).box == (4.0, 2.0, 19.0, 11.0)
    assert largest_slice(reference, Axis.SAGITTAL) in range(5, 9)


@pytest.mark.parametrize("counts", [[0, 3, 3, 5, 1], [4, 0, 0, 1], [1], [0, 2, 2, 0]])
def test_middle_slice_holds_the_middle_voxel_as_the_challenge_takes_it(counts):
    reference = np.zeros((len(counts), 4, 8), bool)
    for k, count in enumerate(counts):
        reference[k].flat[:count] = True
    z_indices = np.nonzero(reference)[0]  # get_boxes.py: z_indices[len(z_indices) // 2]
    assert middle_slice(reference, Axis.AXIAL) == z_indices[len(z_indices) // 2]


def test_first_click_is_the_point_farthest_from_the_boundary():
    y, x = np.mgrid[:30, :40]
    region = (x - 25) ** 2 + (y - 12) ** 2 <= 64
    region[12, 17:34] = True  # a spur must not attract the click
    assert interior_point(region) == (12, 25)
    edge = np.zeros((10, 10), bool)
    edge[:, :3] = True  # touching the image border still counts as a boundary
    assert interior_point(edge)[1] == 1


def test_next_click_targets_the_largest_error_with_the_right_sign():
    reference = np.zeros((40, 40), bool)
    reference[5:30, 5:30] = True
    missed_much = reference.copy()
    missed_much[5:30, 5:15] = False  # a large miss on the left
    click = next_click(missed_much, reference)
    assert click.positive and 5 <= click.index[1] < 15 and 5 <= click.index[0] < 30
    extra = reference.copy()
    extra[32:40, 0:40] = True  # a larger leak below
    click = next_click(extra, reference)
    assert not click.positive and click.index[0] >= 32
    assert next_click(reference, reference) is None


def test_next_click_in_3d_joins_errors_that_touch_at_a_corner():
    reference = np.zeros((10, 20, 20), bool)
    prediction = reference.copy()
    prediction[0:3, 0:3, 0:3] = True  # 27 extra voxels ...
    prediction[3:6, 3:6, 3:6] = True  # ... and 27 more touching them only at a corner: one component of 54
    reference[6:9, 10:14, 10:14] = True  # 48 missed voxels
    click = next_click(prediction, reference)
    assert not click.positive and prediction[click.index]
    reference[6:9, 10:15, 10:14] = True  # now 60 missed voxels: the larger error
    click = next_click(prediction, reference)
    # Voxels 2 from the boundary tie (k 7, j 11-13, i 11-12): the first in index order is taken.
    assert click.positive and click.index == (7, 12, 11)


@pytest.fixture
def predictor(tiny_sam_model, ct_phantom):
    predictor = VolumePredictor(tiny_sam_model)
    predictor.set_volume(ct_phantom)
    return predictor


def test_one_box_report_counts_slices_beyond_and_short_at_each_end(predictor, ct_phantom):
    reference = ct_phantom.array > 100
    report = evaluate_structure(predictor, reference, "organ", EvaluationSettings())
    first, last = report.reference_slices
    segmented = report.segmented_slices
    assert report.beyond == (sum(s < first for s in segmented), sum(s > last for s in segmented))
    if segmented:
        assert report.short == (max(0, min(segmented) - first), max(0, last - max(segmented)))
    assert 0 <= report.nsd <= 1 and report.mask.shape == reference.shape
    record = report.to_json()
    assert record["slices_beyond_reference"] == {"lower": report.beyond[0], "upper": report.beyond[1]}
    assert record["slices_short_of_reference"] == {"lower": report.short[0], "upper": report.short[1]}


def test_oracle_prompts_every_slice_of_the_extent_and_names_those_it_cannot(predictor, ct_phantom):
    reference = ct_phantom.array > 100
    first, last = np.nonzero(reference.any(axis=(1, 2)))[0][[0, -1]]
    reference[last] = False
    reference[last, 20, 30:40] = True  # its last slice one pixel thin: no box fits it
    reference[first] = False
    reference[first, 20:25, 30:35] = True
    report = evaluate_oracle(predictor, reference, EvaluationSettings())
    assert report.unprompted_slices == [last]
    assert report.prompted_slices == last - first
    assert not report.mask[:first].any() and not report.mask[last:].any()


def test_the_oracle_with_margin_widens_each_box_as_propagation_widens_its_carried_box():
    assert _widened(Prompts(box=(10.0, 10.0, 49.0, 19.0)), (40, 60)).box == (6.0, 8.0, 53.0, 21.0)
    assert _widened(Prompts(box=(1.0, 0.0, 59.0, 39.0)), (40, 60)).box == (0.0, 0.0, 59.0, 39.0)  # within the slice


def test_challenge_records_a_box_step_and_each_click(predictor, ct_phantom):
    reference = ct_phantom.array > 100
    report = evaluate_challenge(predictor, reference, "organ", EvaluationSettings(clicks=3))
    assert [step.clicks for step in report.steps] == [0, 1, 2, 3]
    assert report.slice_range == tuple(np.nonzero(reference.any(axis=(1, 2)))[0][[0, -1]])
    assert all(0 <= step.dice <= 1 and 0 <= step.nsd <= 1 for step in report.steps)
    first, last = report.slice_range
    assert not report.mask[:first].any() and not report.mask[last + 1 :].any()  # the box gives the extent
    record = report.to_json()
    assert record["dice_final"] == round(report.steps[-1].dice, 4)
    dice_after_clicks = [step.dice for step in report.steps[1:]]
    expected_auc = sum((a + b) / 2 for a, b in itertools.pairwise(dice_after_clicks))
    assert report.auc("dice") == pytest.approx(expected_auc)
    for step in report.steps[1:]:
        assert step.correction  # every step says what the click did


def test_a_click_changes_its_slice_or_the_empty_slices_around_it(predictor, ct_phantom):
    reference = ct_phantom.array > 100
    one = evaluate_challenge(predictor, reference, "organ", EvaluationSettings(clicks=0))
    two = evaluate_challenge(predictor, reference, "organ", EvaluationSettings(clicks=1))
    click = two.steps[1].click
    changed = set(np.nonzero((one.mask != two.mask).any(axis=(1, 2)))[0])
    if two.steps[1].correction == GAP_FILLED:
        empty = ~one.mask.any(axis=(1, 2))
        assert empty[click.index[0]] and all(
            empty[min(k, click.index[0]) : max(k, click.index[0]) + 1] for k in changed
        )
    else:
        assert changed <= {click.index[0]}
        assert two.steps[1].correction in (RESEGMENTED, ERASED)


def test_an_empty_slice_where_propagation_finds_nothing_is_segmented_alone(predictor, ct_phantom, monkeypatch):
    reference = ct_phantom.array > 100
    mask = np.zeros_like(reference)
    nothing = ObjectResult("correction", np.zeros_like(reference))  # the prompted slice judged empty
    monkeypatch.setattr(runner, "_run", lambda predictor, request: nothing)
    click = next_click(mask, reference)
    extent = (0, reference.shape[0] - 1)
    assert runner._correct(predictor, reference, mask, click, {}, extent, Axis.AXIAL) == RESEGMENTED
    k, y, x = click.index
    prompts = box_from_reference(reference[k])
    prompts.add_point(float(x), float(y), positive=True)
    assert np.array_equal(mask[k], predictor.predict(Axis.AXIAL, k, prompts).mask)
    assert not np.delete(mask, k, axis=0).any()


def test_a_box_only_model_gets_the_slice_box_and_nothing_more(tiny_sam_model, ct_phantom):
    box_only = copy.copy(tiny_sam_model)
    box_only.spec = dataclasses.replace(tiny_sam_model.spec, prompts=frozenset({PromptKind.BOX}))
    predictor = VolumePredictor(box_only)
    predictor.set_volume(ct_phantom)
    reference = ct_phantom.array > 100
    report = evaluate_challenge(predictor, reference, "organ", EvaluationSettings(clicks=5))
    assert len(report.steps) == 6  # no click ever sent a point to a model that refuses them
    for step in report.steps[1:]:
        if step.click is not None and step.click.index[0] == report.seed_index:
            assert step.correction == UNCHANGED  # the prompted slice already has its box


def test_an_empty_reference_is_refused(predictor, ct_phantom):
    with pytest.raises(ValueError, match="no voxels"):
        evaluate_structure(predictor, np.zeros(ct_phantom.array.shape, bool), "x", EvaluationSettings())


def _write_case(folder, volume, labels, names):
    folder.mkdir(parents=True)
    sitk.WriteImage(image_on_grid(volume.array, volume), str(folder / "ct.nrrd"))
    sitk.WriteImage(image_on_grid(labels.astype(np.uint8), volume), str(folder / "labels.nrrd"))
    (folder / "labels.json").write_text(json.dumps(names))


def test_a_case_records_absent_and_unpromptable_structures_and_goes_on(tiny_sam_model, ct_phantom, tmp_path):
    labels = (ct_phantom.array > 100).astype(np.uint8)
    labels[2, 5, 5:15] = 2  # one pixel thin on its only slice: no box
    _write_case(tmp_path / "data" / "phantom", ct_phantom, labels, {"1": "organ", "2": "thread", "3": "missing"})
    (case,) = find_cases(tmp_path / "data")
    assert case == CaseFiles(
        "phantom",
        tmp_path / "data/phantom/ct.nrrd",
        tmp_path / "data/phantom/labels.nrrd",
        tmp_path / "data/phantom/labels.json",
    )
    assert pickle.loads(pickle.dumps(case)) == case  # a case can be sent to a worker process
    done = []
    report = evaluate_case(
        case, EvaluationSettings(clicks=2), tiny_sam_model, progress=lambda d, t: done.append((d, t))
    )
    assert done == [(1, 3), (2, 3), (3, 3)]
    statuses = {r.name: r.status for r in report.structures}
    assert statuses == {"organ": "evaluated", "thread": "unpromptable", "missing": "absent"}
    record = json.loads(json.dumps(report.to_json()))
    assert "too small" in record["structures"]["thread"]["reason"]
    assert len(record["structures"]["organ"]["challenge"]["steps"]) == 3
    assert record["means"]["evaluated"] == 1 and record["means"]["unpromptable"] == 1
    assert record["means"]["box"]["dice_3d"] == record["structures"]["organ"]["box"]["dice_3d"]
    assert pickle.loads(pickle.dumps(report)).case == "phantom"  # and its report sent back


def test_labels_stored_with_flipped_rows_are_read_by_geometry(ct_phantom, tmp_path):
    labels = (ct_phantom.array > 100).astype(np.uint8)
    labels[:, :10, :] = 2  # rows that tell up from down
    flipped = sitk.GetImageFromArray(labels[:, ::-1, :].copy())
    flipped.SetSpacing(ct_phantom.spacing)
    direction = np.asarray(ct_phantom.direction) @ np.diag([1.0, -1.0, 1.0])
    flipped.SetDirection(tuple(direction.reshape(-1)))
    last_row = np.asarray(ct_phantom.origin) + np.asarray(ct_phantom.direction)[:, 1] * ct_phantom.spacing[1] * (
        labels.shape[1] - 1
    )
    flipped.SetOrigin(tuple(last_row))
    sitk.WriteImage(image_on_grid(ct_phantom.array, ct_phantom), str(tmp_path / "ct.nrrd"))
    sitk.WriteImage(flipped, str(tmp_path / "labels.nrrd"))
    case = load_labelled_case(tmp_path / "ct.nrrd", tmp_path / "labels.nrrd")
    assert np.array_equal(case.labels, labels)
    elsewhere = sitk.GetImageFromArray(labels)
    elsewhere.SetOrigin((500.0, 0.0, 0.0))
    sitk.WriteImage(elsewhere, str(tmp_path / "other.nrrd"))
    with pytest.raises(Exception, match="does not cover the image"):
        load_labelled_case(tmp_path / "ct.nrrd", tmp_path / "other.nrrd")


def test_evaluate_a_dataset_folder_writes_one_report_and_one_plot(tiny_sam_model, tmp_path, monkeypatch, capsys):
    from synthetic import make_ct_phantom

    from SAMSegmentLib.cli import main

    monkeypatch.setattr("SAMSegmentLib.cli.evaluate_command.open_model", lambda args: tiny_sam_model)
    for name, seed, names in (("case-a", 0, {"1": "organ"}), ("case-b", 1, {"1": "organ", "2": "missing"})):
        volume = make_ct_phantom(shape=(6, 32, 40), seed=seed)
        _write_case(tmp_path / "data" / name, volume, volume.array > 100, names)
    misspelt = ["evaluate", "--dataset", str(tmp_path / "data"), "--structures", "organ,orgn"]
    assert main(misspelt) == 2 and "orgn" in capsys.readouterr().err  # refused before any work
    report, plot = tmp_path / "out" / "report.json", tmp_path / "out" / "plot.png"
    code = main(
        [
            "evaluate",
            "--dataset",
            str(tmp_path / "data"),
            "--structures",
            "organ,missing",
            "--clicks",
            "2",
            "--tolerance-mm",
            "3",
            "--report",
            str(report),
            "--plot",
            str(plot),
        ]
    )
    assert code == 0 and plot.stat().st_size > 0
    document = json.loads(report.read_text())
    assert set(document["cases"]) == {"case-a", "case-b"}
    assert document["settings"]["nsd_tolerance_mm"] == 3.0
    assert document["means"]["structures"] == 4 and document["means"]["absent"] == 2
    assert "not among the structures named" in document["cases"]["case-a"]["structures"]["missing"]["reason"]
    assert document["cases"]["case-b"]["structures"]["missing"] == {
        "status": "absent",
        "reason": "no voxel of it in the reference",
    }
    per_case = [document["cases"][c]["structures"]["organ"]["box"]["dice_3d"] for c in ("case-a", "case-b")]
    assert document["means"]["box"]["dice_3d"] == pytest.approx(np.mean(per_case), abs=1e-4)
    assert len(document["means"]["challenge"]["dice"]) == 3


def test_of_equally_far_voxels_the_click_takes_the_one_nearest_the_centre():
    rim = np.zeros((20, 20), bool)
    rim[5, 3:18] = True  # a one-pixel band: every voxel is one from the boundary
    assert interior_point(rim) == (5, 10)
