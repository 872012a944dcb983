"""Where a click in a slice view lands on the engine's volume: which axis the view shows, which
slice, and the (x, y) position inside that slice.

Slice views are in world RAS, so ``arrayToRas`` here is the array-to-*world* matrix of the grid:
for the Segment Editor's grid, ``geometry.arrayToWorldMatrix`` (through the segmentation's parent
transform), not the grid's own ``arrayToRasMatrix``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import slicer

from SAMSegmentLib.volume import Axis, ijk_to_slice, slice_to_ijk

from .geometry import matrixToArray

# A view tilted by more than this from every volume axis is a reformat the engine cannot segment.
DEFAULT_TOLERANCE_DEGREES = 1.0
_AXIS_OF_IJK = {0: Axis.SAGITTAL, 1: Axis.CORONAL, 2: Axis.AXIAL}


class ObliqueSliceError(ValueError):
    """The slice view is not aligned with the volume's voxel grid."""


class OutsideVolumeError(ValueError):
    """The position is outside the volume."""


@dataclass(frozen=True)
class SlicePosition:
    """A position on one slice of the volume: slice ``index`` along ``axis``, ``xy`` in slice pixels."""

    axis: Axis
    index: int
    xy: tuple[float, float]

    def sameSlice(self, other: SlicePosition) -> bool:
        return self.axis == other.axis and self.index == other.index


def sliceViewAxis(
    sliceNode: slicer.vtkMRMLSliceNode, arrayToRas: np.ndarray, toleranceDegrees: float = DEFAULT_TOLERANCE_DEGREES
) -> Axis:
    """The volume axis the slice view looks along; ObliqueSliceError for a reformatted view.

    The view's normal is compared with the volume's voxel axes (not with RAS), so a volume
    acquired obliquely is segmented in its own slices when the view is aligned with them."""
    normal = matrixToArray(sliceNode.GetSliceToRAS())[:3, 2]
    normal = normal / np.linalg.norm(normal)
    axes = arrayToRas[:3, :3]
    cosines = np.abs(normal @ (axes / np.linalg.norm(axes, axis=0)))
    best = int(np.argmax(cosines))
    if cosines[best] < math.cos(math.radians(toleranceDegrees)):
        angle = math.degrees(math.acos(min(1.0, cosines[best])))
        raise ObliqueSliceError(
            f"The slice view is rotated {angle:.1f} degrees away from the volume's slices. "
            "Align the view with the volume (slice view menu: 'Rotate to volume plane') to segment in it."
        )
    return _AXIS_OF_IJK[best]


def xyToArrayIjk(sliceNode: slicer.vtkMRMLSliceNode, xy: tuple[float, float], arrayToRas: np.ndarray) -> np.ndarray:
    """Continuous array indices (i, j, k) of view position ``xy`` (pixels in the slice view)."""
    ras = matrixToArray(sliceNode.GetXYToRAS()) @ np.array([xy[0], xy[1], 0.0, 1.0])
    return (np.linalg.inv(arrayToRas) @ ras)[:3]


def slicePositionFromXy(
    sliceNode: slicer.vtkMRMLSliceNode,
    xy: tuple[float, float],
    arrayToRas: np.ndarray,
    shapeKji: tuple[int, int, int],
    toleranceDegrees: float = DEFAULT_TOLERANCE_DEGREES,
) -> SlicePosition:
    """The slice and in-slice position of a click at view position ``xy``.

    Raises ObliqueSliceError for a reformatted view, OutsideVolumeError for a click off the volume."""
    axis = sliceViewAxis(sliceNode, arrayToRas, toleranceDegrees)
    ijk = xyToArrayIjk(sliceNode, xy, arrayToRas)
    index, position = ijk_to_slice(axis, (ijk[0], ijk[1], ijk[2]))
    nk, nj, ni = shapeKji
    # Voxel centres are at integer indices, so the volume reaches half a voxel beyond them.
    inside = all(-0.5 <= value <= size - 0.5 for value, size in zip(ijk, (ni, nj, nk), strict=True))
    if not inside:
        raise OutsideVolumeError("The click is outside the volume.")
    columns, rows = _sliceSize(axis, shapeKji)
    x, y = float(np.clip(position[0], 0, columns - 1)), float(np.clip(position[1], 0, rows - 1))
    return SlicePosition(axis, min(max(index, 0), shapeKji[axis.array_axis] - 1), (x, y))


def _sliceSize(axis: Axis, shapeKji: tuple[int, int, int]) -> tuple[int, int]:
    """(columns, rows) of a slice along ``axis``."""
    rows, columns = [size for dimension, size in enumerate(shapeKji) if dimension != axis.array_axis]
    return columns, rows


def sliceToXy(
    sliceNode: slicer.vtkMRMLSliceNode, position: SlicePosition, arrayToRas: np.ndarray
) -> tuple[float, float, float]:
    """View position (x, y, z) of a slice position, to draw prompts; z is the distance from the
    displayed plane in view slices (0 when the prompt's slice is the one shown)."""
    ijk = slice_to_ijk(position.axis, position.index, position.xy)
    ras = arrayToRas @ np.array([*ijk, 1.0])
    xyz = np.linalg.inv(matrixToArray(sliceNode.GetXYToRAS())) @ ras
    return float(xyz[0]), float(xyz[1]), float(xyz[2])
