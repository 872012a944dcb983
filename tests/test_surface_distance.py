"""The normalized surface distance against cases whose answer is known in mm."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from SAMSegmentLib.metrics import normalized_surface_distance


def _ball(shape, spacing, centre_mm, radius_mm):
    grid = np.meshgrid(*(np.arange(n) * s for n, s in zip(shape, spacing)), indexing="ij")
    return sum((g - c) ** 2 for g, c in zip(grid, centre_mm)) <= radius_mm**2


def _surface_by_faces(mask, spacing):
    """Brute force: (voxel index, exposed face area) for each voxel with a face on the outside."""
    surface = []
    for index in zip(*np.nonzero(mask)):
        area = 0.0
        for axis in range(mask.ndim):
            face = np.prod([s for a, s in enumerate(spacing) if a != axis])
            for step in (-1, 1):
                neighbour = list(index)
                neighbour[axis] += step
                inside = 0 <= neighbour[axis] < mask.shape[axis] and mask[tuple(neighbour)]
                area += 0 if inside else face
        if area:
            surface.append((index, area))
    return surface


def _nsd_brute_force(a, b, spacing, tolerance):
    surfaces = [_surface_by_faces(m, spacing) for m in (a, b)]
    points = [np.array([i for i, _ in s], float) * spacing for s in surfaces]
    areas = [np.array([w for _, w in s]) for s in surfaces]
    distances = cdist(points[0], points[1])
    close = (areas[0] * (distances.min(axis=1) <= tolerance)).sum() + (
        areas[1] * (distances.min(axis=0) <= tolerance)
    ).sum()
    return close / (areas[0].sum() + areas[1].sum())


def test_identical_and_empty_masks():
    mask = _ball((10, 20, 20), (3.0, 1.0, 1.0), (15, 10, 10), 6)
    assert normalized_surface_distance(mask, mask, (3.0, 1.0, 1.0)) == 1.0
    empty = np.zeros_like(mask)
    assert normalized_surface_distance(empty, empty, (1, 1, 1)) == 1.0
    assert normalized_surface_distance(mask, empty, (1, 1, 1)) == 0.0
    assert normalized_surface_distance(empty, mask, (1, 1, 1)) == 0.0


def test_concentric_spheres_4_mm_apart_on_anisotropic_voxels():
    spacing = (2.0, 0.6, 0.6)
    shape, centre = (30, 80, 80), (30.0, 24.0, 24.0)
    inner, outer = _ball(shape, spacing, centre, 12.0), _ball(shape, spacing, centre, 16.0)
    # Surface voxel centres lie up to half a voxel (1 mm along k) inside the true surfaces.
    assert normalized_surface_distance(inner, outer, spacing, tolerance_mm=2.0) < 0.05
    assert normalized_surface_distance(inner, outer, spacing, tolerance_mm=6.0) == 1.0
    halfway = normalized_surface_distance(inner, outer, spacing, tolerance_mm=4.0)
    assert 0.05 < halfway < 1.0


def test_the_same_voxel_shift_counts_by_its_length_in_mm():
    spacing = (3.0, 0.5, 0.5)
    cube = np.zeros((20, 40, 40), bool)
    cube[5:15, 10:30, 10:30] = True
    along_i = np.roll(cube, 2, axis=2)  # 1 mm
    along_k = np.roll(cube, 2, axis=0)  # 6 mm
    assert normalized_surface_distance(along_i, cube, spacing, tolerance_mm=2.0) == 1.0
    assert normalized_surface_distance(along_k, cube, spacing, tolerance_mm=2.0) < 0.9
    assert normalized_surface_distance(along_k, cube, spacing, tolerance_mm=6.0) == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_a_brute_force_count_on_random_shapes(seed):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    spacing = (2.5, 0.8, 1.1)
    a = ndimage.gaussian_filter(rng.random((8, 14, 12)), 1.5) > 0.5
    b = ndimage.gaussian_filter(rng.random((8, 14, 12)), 1.5) > 0.5
    for tolerance in (0.5, 1.5, 3.0):
        expected = _nsd_brute_force(a, b, spacing, tolerance)
        assert normalized_surface_distance(a, b, spacing, tolerance) == pytest.approx(expected)
        assert normalized_surface_distance(b, a, spacing, tolerance) == pytest.approx(expected)


def test_refuses_masks_and_spacing_that_do_not_match():
    with pytest.raises(ValueError, match="do not match"):
        normalized_surface_distance(np.ones((3, 3, 3), bool), np.ones((3, 3, 4), bool), (1, 1, 1))
    with pytest.raises(ValueError, match="do not match"):
        normalized_surface_distance(np.ones((3, 3, 3), bool), np.ones((3, 3, 3), bool), (1, 1))
