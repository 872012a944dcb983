"""Mask-guided multimodal registration on a synthetic pair made by a known motion and modality change."""

import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from SAMSegmentLib.atomic import OutputError
from SAMSegmentLib.errors import InputImageError
from SAMSegmentLib.research.registration import (
    RegistrationOptions,
    checkerboard,
    mask_points,
    register_with_masks,
    resample_onto,
    slicer_to_parent_matrix,
    transform_error,
    write_transform,
)
from SAMSegmentLib.research.sitk_images import image_on_grid
from SAMSegmentLib.research.synthetic_pair import synthetic_pair
from SAMSegmentLib.volume import Volume

ROTATION_DEG = (4.0, -3.0, 6.0)
TRANSLATION_MM = (6.0, -4.0, 3.0)


def _phantom() -> tuple[Volume, np.ndarray]:
    """CT-like body with an asymmetric organ (an ellipsoid with a lobe) and a bony rod behind it."""
    rng = np.random.default_rng(1)
    spacing = (2.0, 2.0, 2.5)
    shape = (40, 64, 64)
    k, j, i = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    z, y, x = k * spacing[2], j * spacing[1], i * spacing[0]
    cz, cy, cx = shape[0] * spacing[2] / 2, shape[1] * spacing[1] / 2, shape[2] * spacing[0] / 2
    body = ((y - cy) / 55) ** 2 + ((x - cx) / 60) ** 2 < 1
    organ = ((z - cz) / 30) ** 2 + ((y - cy + 5) / 18) ** 2 + ((x - cx - 8) / 26) ** 2 < 1
    lobe = ((z - cz - 10) / 12) ** 2 + ((y - cy - 12) / 10) ** 2 + ((x - cx + 14) / 10) ** 2 < 1
    rod = ((y - cy - 30) / 8) ** 2 + ((x - cx) / 8) ** 2 < 1
    array = np.full(shape, -1000.0)
    array[body] = 30.0
    array[organ | lobe] = 120.0
    array[rod & body] = 700.0
    array += rng.normal(0.0, 10.0, shape)
    direction = np.diag([-1.0, -1.0, 1.0])  # as the shared CT: LPS axes flipped in-plane
    volume = Volume(array.astype(np.float32), spacing=spacing, origin=(60.0, 70.0, 10.0), direction=direction)
    return volume, organ | lobe


def _other_modality(hu: np.ndarray) -> np.ndarray:
    """Inverted and non-linear: bright bone becomes dark, air bright, soft tissue compressed."""
    rng = np.random.default_rng(2)
    return 1000.0 * (1.0 - np.sqrt(np.clip((hu + 1000.0) / 1800.0, 0.0, 1.0))) + rng.normal(0.0, 10.0, hu.shape)


@pytest.fixture(scope="module")
def pair():
    fixed, mask = _phantom()
    return fixed, mask, synthetic_pair(fixed, mask, ROTATION_DEG, TRANSLATION_MM, _other_modality, background=-1000.0)


@pytest.fixture(scope="module")
def results(pair):
    """Registrations of the pair by option set, each run once for the module."""
    fixed, mask, synthetic = pair
    cache = {}

    def run(**options):
        key = tuple(sorted(options.items()))
        if key not in cache:
            cache[key] = register_with_masks(
                fixed, mask, synthetic.moving, synthetic.moving_mask, RegistrationOptions(**options)
            )
        return cache[key]

    return run


@pytest.mark.slow  # registers whole volumes
# An affine fit to voxel masks may trade a little rotation for shear, hence its wider limit.
@pytest.mark.parametrize(("affine", "max_rotation_deg"), [(False, 1.0), (True, 1.5)])
def test_the_known_motion_is_recovered_across_modalities(pair, results, affine, max_rotation_deg):
    fixed, mask, synthetic = pair
    result = results(affine=affine)
    error = transform_error(result.transform, synthetic.truth, mask_points(fixed, mask))
    # Voxels are 2-2.5 mm and the masks are voxel masks: sub-voxel and sub-degree agreement.
    assert error.mean_mm < 1.0 and error.max_mm < 2.0, error
    assert error.rotation_deg < max_rotation_deg, error
    assert result.dice_identity < 0.8 < 0.95 < result.dice_final


def test_the_untouched_start_is_far_from_the_truth(pair):
    """The test can fail: the motion is large enough that the identity is millimetres off."""
    fixed, mask, synthetic = pair
    error = transform_error(sitk.Euler3DTransform(), synthetic.truth, mask_points(fixed, mask))
    assert error.mean_mm > 5.0 and error.rotation_deg > 5.0


def test_edge_refinement_is_kept_only_when_the_masks_still_agree(results):
    plain = results(edge_refinement=False)
    refined = results(affine=False)
    assert not plain.edge_refined and plain.dice_final == plain.dice_masks
    if refined.edge_refined:
        assert refined.dice_final >= refined.dice_masks - RegistrationOptions().max_dice_loss
    else:
        assert refined.dice_final == refined.dice_masks


def test_edges_bring_the_result_closer_than_the_masks_alone(pair, results):
    fixed, mask, synthetic = pair
    points = mask_points(fixed, mask)
    plain = transform_error(results(edge_refinement=False).transform, synthetic.truth, points)
    refined = results(affine=False)
    assert refined.edge_refined
    assert transform_error(refined.transform, synthetic.truth, points).mean_mm < plain.mean_mm


@pytest.mark.parametrize("suffix", [".tfm", ".h5"])
def test_the_written_transform_reads_back_as_the_same_mapping(pair, results, tmp_path, suffix):
    fixed, mask, _ = pair
    result = results(affine=False)
    path = write_transform(tmp_path / f"moving_to_fixed{suffix}", result.transform)
    loaded = sitk.ReadTransform(str(path))
    points = mask_points(fixed, mask, limit=50)
    for point in points:
        assert np.allclose(
            loaded.TransformPoint(tuple(point)), result.transform.TransformPoint(tuple(point)), atol=1e-6
        )
    assert not list(tmp_path.glob("*partial*"))


def test_resampled_moving_mask_lands_on_the_fixed_mask(pair):
    fixed, mask, synthetic = pair
    moved = resample_onto(
        fixed, synthetic.moving, synthetic.moving_mask.astype(np.uint8), synthetic.truth, nearest=True
    )
    overlap = (moved > 0) & mask
    assert 2 * overlap.sum() / (mask.sum() + (moved > 0).sum()) > 0.95


def test_masks_that_do_not_fit_their_image_are_refused(pair):
    fixed, mask, synthetic = pair
    with pytest.raises(InputImageError, match="fixed mask has shape"):
        register_with_masks(fixed, mask[1:], synthetic.moving, synthetic.moving_mask)
    with pytest.raises(InputImageError, match="moving mask is empty"):
        register_with_masks(fixed, mask, synthetic.moving, np.zeros_like(synthetic.moving_mask))


def test_slicer_matrix_maps_moving_ras_points_to_fixed_ras_points(pair):
    fixed, mask, synthetic = pair
    to_parent = slicer_to_parent_matrix(synthetic.truth)
    for fixed_lps in mask_points(fixed, mask, limit=20):
        moving_lps = np.asarray(synthetic.truth.TransformPoint(tuple(fixed_lps)))
        moving_ras = np.append(moving_lps * [-1, -1, 1], 1.0)
        assert np.allclose((to_parent @ moving_ras)[:3], fixed_lps * [-1, -1, 1], atol=1e-6)


def test_transform_files_need_an_itk_suffix(tmp_path):
    with pytest.raises(OutputError, match=r"\.tfm"):
        write_transform(tmp_path / "transform.nrrd", sitk.Euler3DTransform())


def test_checkerboard_alternates_the_two_images():
    board = checkerboard(np.zeros((8, 8)), np.ones((8, 8)), squares=4)
    assert board[0, 0] == 0 and board[0, 2] == 1 and board[2, 0] == 1 and board[2, 2] == 0
    assert board.mean() == pytest.approx(0.5)


@pytest.mark.slow  # the CLI in a process
def test_register_command_writes_a_transform_slicer_can_load_and_a_png(pair, tmp_path):
    fixed, mask, synthetic = pair
    files = {}
    for role, volume, array in (
        ("fixed", fixed, fixed.array),
        ("fixed_mask", fixed, mask.astype(np.uint8) * 5),
        ("moving", synthetic.moving, synthetic.moving.array),
        ("moving_mask", synthetic.moving, synthetic.moving_mask.astype(np.uint8)),
    ):
        files[role] = tmp_path / f"{role}.nrrd"
        sitk.WriteImage(image_on_grid(array, volume), str(files[role]))
    output = tmp_path / "out" / "moving_to_fixed.tfm"
    png = tmp_path / "check.png"
    completed = subprocess.run(
        [sys.executable, "-m", "SAMSegmentLib", "register", "--fixed", files["fixed"], "--fixed-mask",
         files["fixed_mask"], "--fixed-label", "5", "--moving", files["moving"], "--moving-mask",
         files["moving_mask"], "--output", output, "--png", png],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert "Mask Dice" in completed.stdout
    error = transform_error(sitk.ReadTransform(str(output)), synthetic.truth, mask_points(fixed, mask))
    assert error.mean_mm < 1.0
    assert png.stat().st_size > 0
