import numpy as np
import pytest

from SAMSegmentLib.errors import InputImageError, PromptError
from SAMSegmentLib.volume import Axis, Volume, ijk_to_slice, put_slice, slice_to_ijk


def test_slices_on_all_three_axes_match_numpy_indexing(ct_phantom):
    array = ct_phantom.array
    assert np.array_equal(ct_phantom.slice_2d(Axis.AXIAL, 3), array[3])
    assert np.array_equal(ct_phantom.slice_2d(Axis.CORONAL, 7), array[:, 7, :])
    assert np.array_equal(ct_phantom.slice_2d(Axis.SAGITTAL, 9), array[:, :, 9])
    assert ct_phantom.slice_shape(Axis.CORONAL) == (array.shape[0], array.shape[2])
    assert ct_phantom.slice_count(Axis.SAGITTAL) == array.shape[2]


@pytest.mark.parametrize("axis", list(Axis))
def test_slice_coordinates_round_trip_through_voxel_indices(ct_phantom, axis):
    ijk = (5.0, 11.0, 4.0)
    index, xy = ijk_to_slice(axis, ijk)
    assert slice_to_ijk(axis, index, xy) == ijk
    # The pixel at (x, y) of the slice is the voxel at ijk.
    value = ct_phantom.slice_2d(axis, index)[int(xy[1]), int(xy[0])]
    assert value == ct_phantom.array[int(ijk[2]), int(ijk[1]), int(ijk[0])]


@pytest.mark.parametrize("axis", list(Axis))
def test_put_slice_writes_where_slice_2d_reads(ct_phantom, axis):
    target = np.zeros(ct_phantom.array.shape, dtype=np.int16)
    put_slice(target, axis, 2, ct_phantom.slice_2d(axis, 2))
    assert np.array_equal(np.take(target, 2, axis=axis.array_axis), ct_phantom.slice_2d(axis, 2))
    assert np.count_nonzero(target) == np.count_nonzero(ct_phantom.slice_2d(axis, 2))


def test_geometry_maps_indices_to_physical_points():
    direction = np.array([[-1.0, 0, 0], [0, -1.0, 0], [0, 0, 1.0]])
    volume = Volume(
        np.arange(24).reshape(2, 3, 4), spacing=(2.0, 3.0, 5.0), origin=(10.0, 20.0, 30.0), direction=direction
    )
    assert np.allclose(volume.ijk_to_physical([1, 1, 1]), [8.0, 17.0, 35.0])
    assert volume.shape_ijk == (4, 3, 2)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((8, 8)), "2 dimension"),
        (np.zeros((2, 8, 8, 3)), "4 dimensions"),
        (np.zeros((0, 8, 8)), "empty"),
        (np.full((4, 8, 8), 7.0), "constant"),
        (np.where(np.eye(8)[None], np.nan, 1.0), "NaN"),
    ],
)
def test_unusable_images_are_refused_with_a_clear_message(array, message):
    with pytest.raises(InputImageError, match=message):
        Volume(array)


def test_slice_index_outside_the_volume_is_a_prompt_error(ct_phantom):
    with pytest.raises(PromptError, match="outside the volume"):
        ct_phantom.slice_2d(Axis.AXIAL, ct_phantom.slice_count(Axis.AXIAL))
