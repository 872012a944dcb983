"""SAM prior maps (SAMAug): segmentation and boundary priors, and their volumes on the input grid."""

import numpy as np
import pytest
import SimpleITK as sitk

from SAMSegmentLib.intensity import mapping_for
from SAMSegmentLib.predictor import VolumePredictor
from SAMSegmentLib.research.automatic import GridOptions, SliceMasks, generate_masks
from SAMSegmentLib.research.prior_maps import (
    Combine,
    Quality,
    slice_prior_maps,
    volume_prior_maps,
    write_prior_maps,
)
from SAMSegmentLib.volume import Axis

# The random tiny model's logits stay within +-0.5: a small stability offset keeps its weights non-zero.
TINY_GRID = GridOptions(
    points_per_side=4, min_predicted_iou=-1.0, min_stability=0.0, stability_offset=0.05, nms_iou=0.9, min_area_px=1
)


def _two_squares() -> SliceMasks:
    masks = np.zeros((2, 20, 20), dtype=bool)
    masks[0, 2:10, 2:10] = True
    masks[1, 6:14, 6:14] = True
    return SliceMasks(
        masks,
        predicted_iou=np.array([0.7, 0.8]),
        stability=np.array([0.9, 0.6]),
        boxes=np.zeros((2, 4)),
        prompt_count=2,
    )


def test_sum_adds_the_qualities_of_overlapping_masks():
    prior, _ = slice_prior_maps(_two_squares(), Quality.STABILITY, Combine.SUM)
    assert prior[3, 3] == pytest.approx(0.9)
    assert prior[8, 8] == pytest.approx(1.5)
    assert prior[12, 12] == pytest.approx(0.6)
    assert prior[18, 18] == 0.0


def test_max_keeps_the_best_quality_and_predicted_iou_can_weight():
    prior, _ = slice_prior_maps(_two_squares(), Quality.PREDICTED_IOU, Combine.MAX)
    assert prior[3, 3] == pytest.approx(0.7)
    assert prior[8, 8] == pytest.approx(0.8)
    assert prior[12, 12] == pytest.approx(0.8)


def test_boundary_prior_marks_both_sides_of_each_edge_with_its_quality():
    _, boundary = slice_prior_maps(_two_squares(), Quality.STABILITY, Combine.SUM)
    assert boundary[2, 5] == pytest.approx(0.9)  # the first square's top row, inside
    assert boundary[1, 5] == pytest.approx(0.9)  # and the row above it, outside
    assert boundary[5, 5] == 0.0  # inside the first square, away from edges
    assert boundary[13, 10] == pytest.approx(0.6)  # the second square's bottom row
    assert boundary[9, 9] == pytest.approx(0.9)  # the first square's corner, inside the second: the larger
    assert boundary.max() <= 1.0


@pytest.fixture(scope="module")
def phantom_maps(tiny_sam_model):
    from synthetic import make_ct_phantom

    volume = make_ct_phantom()
    predictor = VolumePredictor(tiny_sam_model)
    predictor.set_volume(volume)
    return volume, predictor, volume_prior_maps(predictor, Axis.AXIAL, range(5, 7), TINY_GRID)


def test_volume_priors_are_those_of_each_slice_and_zero_elsewhere(phantom_maps):
    volume, predictor, maps = phantom_maps
    assert maps.prior.shape == volume.array.shape and maps.slices == [5, 6]
    assert not maps.prior[:5].any() and not maps.prior[7:].any()
    found = generate_masks(predictor.model, predictor.embed(Axis.AXIAL, 6), TINY_GRID)
    prior, boundary = slice_prior_maps(found)
    assert prior.any() and boundary.any()
    assert np.array_equal(maps.prior[6], prior) and np.array_equal(maps.boundary[6], boundary)
    assert maps.masks_per_slice[6] == len(found) > 0 and maps.seconds_per_slice > 0


def test_priors_along_another_axis_fill_that_axis(tiny_sam_model):
    from synthetic import make_ct_phantom

    volume = make_ct_phantom()
    predictor = VolumePredictor(tiny_sam_model)
    predictor.set_volume(volume)
    maps = volume_prior_maps(predictor, Axis.SAGITTAL, [30], TINY_GRID)
    assert maps.prior[:, :, 30].any() and not np.delete(maps.prior, 30, axis=2).any()


def test_written_volumes_overlay_the_input(phantom_maps, tmp_path):
    volume, _, maps = phantom_maps
    image01 = mapping_for(volume).apply(volume.array)
    written = write_prior_maps(tmp_path / "priors", volume, image01, maps)
    assert set(written) == {"prior", "boundary", "stacked"}
    for path in written.values():
        image = sitk.ReadImage(str(path))
        assert image.GetSpacing() == pytest.approx(volume.spacing)
        assert image.GetOrigin() == pytest.approx(volume.origin)
        assert image.GetDirection() == pytest.approx(tuple(volume.direction.reshape(-1)))
    stacked = sitk.ReadImage(str(written["stacked"]))
    assert stacked.GetNumberOfComponentsPerPixel() == 3
    channels = sitk.GetArrayFromImage(stacked)
    assert np.allclose(channels[..., 0], image01)
    assert np.allclose(channels[..., 1], maps.prior) and np.allclose(channels[..., 2], maps.boundary)
    assert not list((tmp_path / "priors").glob("*partial*"))
