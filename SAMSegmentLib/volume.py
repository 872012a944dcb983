"""A 3D scalar volume with its geometry, and the mapping between volume indices and 2D slices.

Arrays are indexed ``[k, j, i]`` (slice, row, column), as SimpleITK and Slicer's
``arrayFromVolume`` give them. A 2D slice is addressed by an axis and an index along
it; inside a slice, positions are ``(x, y)`` = (column, row) as Segment Anything
expects. Voxel indices ``(i, j, k)`` follow ITK order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from .errors import InputImageError, PromptError


class Axis(str, Enum):
    """Slice axes named by the array axis they fix (for an axial-acquired volume)."""

    AXIAL = "axial"  # fixes k: slice is arr[k, :, :], x = i, y = j
    CORONAL = "coronal"  # fixes j: slice is arr[:, j, :], x = i, y = k
    SAGITTAL = "sagittal"  # fixes i: slice is arr[:, :, i], x = j, y = k

    @property
    def array_axis(self) -> int:
        return _ARRAY_AXIS[self]


_ARRAY_AXIS = {Axis.AXIAL: 0, Axis.CORONAL: 1, Axis.SAGITTAL: 2}
# For each axis: which ijk components are the slice's (x, y), and which is the slice index.
_IN_PLANE_IJK = {Axis.AXIAL: (0, 1), Axis.CORONAL: (0, 2), Axis.SAGITTAL: (1, 2)}
_SLICE_IJK = {Axis.AXIAL: 2, Axis.CORONAL: 1, Axis.SAGITTAL: 0}


@dataclass
class Volume:
    """Voxel data ``[k, j, i]`` plus geometry: spacing and origin in (i, j, k) order,
    direction a 3x3 matrix whose columns are the i, j, k axis directions (LPS for files,
    as SimpleITK reports them)."""

    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    modality: str = ""

    def __post_init__(self) -> None:
        self.array = validate_volume_array(self.array)
        self.direction = np.asarray(self.direction, dtype=float).reshape(3, 3)
        self.spacing = tuple(float(s) for s in self.spacing)  # type: ignore[assignment]
        self.origin = tuple(float(o) for o in self.origin)  # type: ignore[assignment]

    @property
    def shape_ijk(self) -> tuple[int, int, int]:
        nk, nj, ni = self.array.shape
        return ni, nj, nk

    def slice_count(self, axis: Axis) -> int:
        return self.array.shape[axis.array_axis]

    def slice_2d(self, axis: Axis, index: int) -> np.ndarray:
        """The 2D slice ``[y, x]`` at ``index`` along ``axis`` (a view, not a copy)."""
        self.check_slice_index(axis, index)
        return np.take(self.array, index, axis=axis.array_axis)

    def slice_shape(self, axis: Axis) -> tuple[int, int]:
        """(rows, columns) of a slice along ``axis``."""
        shape = list(self.array.shape)
        del shape[axis.array_axis]
        return shape[0], shape[1]

    def slice_spacing(self, axis: Axis) -> tuple[float, float]:
        """(x, y) pixel spacing of a slice along ``axis``."""
        ix, iy = _IN_PLANE_IJK[axis]
        return self.spacing[ix], self.spacing[iy]

    def spacing_along(self, axis: Axis) -> float:
        """Distance in mm between neighbouring slices along ``axis``."""
        return self.spacing[2 - axis.array_axis]  # spacing is (i, j, k), arrays [k, j, i]

    def check_slice_index(self, axis: Axis, index: int) -> None:
        count = self.slice_count(axis)
        if not 0 <= index < count:
            raise PromptError(
                f"Slice {index} is outside the volume: the {axis.value} axis has slices 0 to {count - 1}."
            )

    def ijk_to_physical(self, ijk: np.ndarray) -> np.ndarray:
        """Physical coordinates (in the volume's frame, LPS for files) of voxel indices."""
        ijk = np.asarray(ijk, dtype=float)
        return np.asarray(self.origin) + (self.direction @ (ijk * np.asarray(self.spacing)).T).T


def validate_volume_array(array: np.ndarray) -> np.ndarray:
    """Check that ``array`` is a finite, non-constant 3D scalar volume; return it as a numpy array."""
    array = np.asarray(array)
    if array.ndim > 3:
        raise InputImageError(
            f"The image has {array.ndim} dimensions {array.shape} (a time series or multi-component image); "
            "SAMSegment needs a single 3D scalar volume: extract one frame or channel first."
        )
    if array.ndim != 3:
        raise InputImageError(
            f"The image has {array.ndim} dimension(s) {array.shape}; SAMSegment needs a 3D scalar volume."
        )
    if array.size == 0 or min(array.shape) < 1:
        raise InputImageError(f"The image is empty (shape {array.shape}).")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool) or np.iscomplexobj(array):
        raise InputImageError(f"The image has voxel type {array.dtype}; a real scalar type is needed.")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise InputImageError("The image contains NaN or infinite voxels; fill or mask them before segmenting.")
    if array.min() == array.max():
        raise InputImageError(f"The image is constant (every voxel is {array.min()}); there is nothing to segment.")
    return array


def ijk_to_slice(axis: Axis, ijk: tuple[float, float, float]) -> tuple[int, tuple[float, float]]:
    """Split voxel indices into (slice index along ``axis``, (x, y) inside that slice)."""
    ix, iy = _IN_PLANE_IJK[axis]
    # int(): a numpy scalar rounds to a numpy value, which is not an index everywhere.
    return int(round(ijk[_SLICE_IJK[axis]])), (float(ijk[ix]), float(ijk[iy]))  # noqa: RUF046


def slice_to_ijk(axis: Axis, index: int, xy: tuple[float, float]) -> tuple[float, float, float]:
    """Voxel indices of position ``xy`` on slice ``index`` along ``axis``."""
    ijk = [0.0, 0.0, 0.0]
    ix, iy = _IN_PLANE_IJK[axis]
    ijk[ix], ijk[iy] = float(xy[0]), float(xy[1])
    ijk[_SLICE_IJK[axis]] = float(index)
    return ijk[0], ijk[1], ijk[2]


def in_plane_ijk_axes(axis: Axis) -> tuple[int, int]:
    """Which ijk components are a slice's x and y along ``axis``."""
    return _IN_PLANE_IJK[axis]


def put_slice(target: np.ndarray, axis: Axis, index: int, slice_2d: np.ndarray) -> None:
    """Write a 2D slice ``[y, x]`` into a ``[k, j, i]`` array."""
    indexer: list[slice | int] = [slice(None)] * 3
    indexer[axis.array_axis] = index
    target[tuple(indexer)] = slice_2d
