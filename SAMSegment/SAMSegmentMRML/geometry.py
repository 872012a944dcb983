"""Convert between Slicer's oriented images (RAS, VTK buffers) and the engine's ``Volume`` (LPS, numpy).

Every array here is indexed ``[k, j, i]`` from the first voxel of the image's extent, which
need not be voxel 0 (a segmentation's reference geometry may start anywhere), so each image
is described by its *array-to-RAS* matrix: the image-to-world matrix shifted to the extent start.

Coordinates: the Segment Editor works in the *segmentation's* coordinates (its aligned source
volume and modifier labelmap are on the reference grid, before the segmentation's parent
transform); views, clicks and markers are in *world* RAS. ``arrayToRasMatrix`` is the former,
``arrayToWorldMatrix`` the latter; they differ only for a segmentation under a transform.
"""

from __future__ import annotations

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from SAMSegmentLib.volume import Axis, Volume

# Slicer's world frame is RAS, the engine's (as read from files by SimpleITK) is LPS.
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def matrixToArray(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(row, column) for column in range(4)] for row in range(4)])


def arrayToMatrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            matrix.SetElement(row, column, float(array[row, column]))
    return matrix


def arrayToRasMatrix(image: slicer.vtkOrientedImageData) -> np.ndarray:
    """4x4 matrix mapping array indices (i, j, k, 1) of ``image``'s scalars to RAS."""
    imageToWorld = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(imageToWorld)
    extent = image.GetExtent()
    shift = np.eye(4)
    shift[:3, 3] = extent[0], extent[2], extent[4]
    return matrixToArray(imageToWorld) @ shift


def arrayToWorldMatrix(
    image: slicer.vtkOrientedImageData, segmentationNode: slicer.vtkMRMLSegmentationNode
) -> np.ndarray:
    """4x4 matrix mapping array indices (i, j, k, 1) of ``image``, an image in ``segmentationNode``'s
    coordinates (the aligned source volume, the session's grid), to world RAS: what slice views,
    clicks and prompt markers use.

    This is the Segment Editor's own image-to-world matrix (``vtkSlicerSegmentEditorLogic::
    ImageToWorldMatrix(vtkOrientedImageData*, vtkMRMLSegmentationNode*, vtkMatrix4x4*)``, which
    ``qSlicerSegmentEditorAbstractLabelEffect::imageToWorldMatrix`` calls): the segmentation's linear
    parent transforms applied; like Slicer's effects, a non-linear one is skipped (Slicer logs an
    error), so harden such a transform before segmenting."""
    imageToWorld = vtk.vtkMatrix4x4()
    slicer.vtkSlicerSegmentEditorLogic.ImageToWorldMatrix(image, segmentationNode, imageToWorld)
    extent = image.GetExtent()
    shift = np.eye(4)
    shift[:3, 3] = extent[0], extent[2], extent[4]
    return matrixToArray(imageToWorld) @ shift


def parentToWorldMatrix(node: slicer.vtkMRMLTransformableNode) -> np.ndarray:
    """The 4x4 RAS matrix of the transforms above ``node`` (identity if none); ValueError if not linear."""
    parent = node.GetParentTransformNode()
    if parent is None:
        return np.eye(4)
    if not parent.IsTransformToWorldLinear():
        raise ValueError(f"'{node.GetName()}' is under a non-linear transform: harden it (Data module) first.")
    toWorld = vtk.vtkMatrix4x4()
    parent.GetMatrixTransformToWorld(toWorld)
    return matrixToArray(toWorld)


def gridInNodeCoordinates(
    image: slicer.vtkOrientedImageData, node: slicer.vtkMRMLTransformableNode
) -> slicer.vtkOrientedImageData:
    """``image``'s grid (no voxels), given in world RAS, expressed in the coordinates of ``node``
    (before its linear parent transforms): resampling a segment of a transformed segmentation on it
    gives the segment's voxels at ``image``'s world positions. ValueError under a non-linear transform.
    (A transform with shear cannot be represented by an oriented image's directions and spacing.)"""
    grid = geometryOf(image)
    parentToWorld = parentToWorldMatrix(node)
    if np.array_equal(parentToWorld, np.eye(4)):
        return grid
    imageToWorld = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(imageToWorld)
    grid.SetImageToWorldMatrix(arrayToMatrix(np.linalg.inv(parentToWorld) @ matrixToArray(imageToWorld)))
    return grid


def _numbers(values) -> str:
    return ",".join(format(float(value), ".17g") for value in np.asarray(values).reshape(-1))


def _toWorldKey(node: slicer.vtkMRMLTransformableNode | None) -> str:
    """Where ``node``'s parent transforms put it: the matrix when linear (identity without any, so an
    identity transform keys as none); for a non-linear chain, each transform node's ID and
    modification time (any change re-keys)."""
    parent = node.GetParentTransformNode() if node is not None else None
    if parent is None or parent.IsTransformToWorldLinear():
        return _numbers(parentToWorldMatrix(node) if parent is not None else np.eye(4))
    chain = []
    while parent is not None:
        chain.append(f"{parent.GetID()}@{parent.GetMTime()}")
        parent = parent.GetParentTransformNode()
    return "nonlinear:" + ",".join(chain)


def volumeKey(
    volumeNode: slicer.vtkMRMLScalarVolumeNode,
    alignedSourceImage: slicer.vtkOrientedImageData | None = None,
    segmentationNode: slicer.vtkMRMLSegmentationNode | None = None,
) -> str:
    """The embedding cache key of the voxels the engine is sent: equal keys mean equal arrays.

    ``alignedSourceImage`` is the image actually sent: the Segment Editor's aligned source volume
    (the source resampled onto ``segmentationNode``'s reference grid, in the segmentation's
    coordinates, ``vtkSlicerSegmentEditorLogic::UpdateAlignedSourceVolume``), or, without it, the
    volume itself in world coordinates (the research panels, ``orientedImageFromVolumeNode``).
    Its voxels depend on
    - the volume's voxels: node ID and image data modification time (editing voxels re-keys);
    - the volume's IJK-to-world matrix (spacing, origin, directions and its parent transforms);
    - the grid they were resampled to (``vtkSegmentationConverter::SerializeImageGeometry``);
    - the segmentation's parent transforms (the source is resampled through the transform from the
      volume to the segmentation).
    A change that leaves the voxels alike may still re-key; the cost is only a recomputation.
    (The intensity mapping is not part of it: the engine caches per key and mapping.)"""
    imageData = volumeNode.GetImageData() if volumeNode is not None else None
    if imageData is None:
        raise ValueError("The volume has no image data.")
    if alignedSourceImage is None:
        alignedSourceImage = orientedImageFromVolumeNode(volumeNode)
    ijkToRas = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(ijkToRas)  # before the volume's parent transforms (next part)
    return "|".join(
        (
            f"{volumeNode.GetID()}:{imageData.GetMTime()}",
            _numbers(matrixToArray(ijkToRas)),
            _toWorldKey(volumeNode),
            slicer.vtkSegmentationConverter.SerializeImageGeometry(alignedSourceImage),
            _toWorldKey(segmentationNode),
        )
    )


def arrayShape(image: vtk.vtkImageData) -> tuple[int, int, int]:
    """``[k, j, i]`` shape of an image's voxel array."""
    ni, nj, nk = image.GetDimensions()
    return nk, nj, ni


def arrayFromImage(image: vtk.vtkImageData) -> np.ndarray:
    """The image's first scalar component as a read-only ``[k, j, i]`` view of VTK's buffer.

    No copy: copying a 512 x 512 x 300 CT takes the GUI thread over half a second. The view keeps
    VTK's array alive (numpy holds it through the buffer protocol) and is sent to the engine
    process as it is; an image whose voxels change starts a new session anyway."""
    scalars = image.GetPointData().GetScalars()
    if scalars is None:
        raise ValueError("The image has no voxel data.")
    values = numpy_support.vtk_to_numpy(scalars)
    if values.ndim == 2:  # several components: the segment editor also uses only the first one
        values = values[:, 0]
    values = values.reshape(arrayShape(image))
    values.flags.writeable = False
    return values


def volumeFromOrientedImage(image: slicer.vtkOrientedImageData, modality: str = "") -> Volume:
    """The engine's ``Volume`` of ``image``: same voxels, geometry in LPS as SimpleITK reports it."""
    arrayToRas = arrayToRasMatrix(image)
    axes = arrayToRas[:3, :3]
    spacing = np.linalg.norm(axes, axis=0)
    return Volume(
        array=arrayFromImage(image),
        spacing=tuple(spacing),
        origin=tuple(RAS_TO_LPS @ arrayToRas[:3, 3]),
        direction=RAS_TO_LPS @ (axes / spacing),
        modality=modality,
    )


def orientedImageFromVolumeNode(volumeNode: slicer.vtkMRMLScalarVolumeNode) -> slicer.vtkOrientedImageData:
    """The volume's voxels as an oriented image in world RAS (linear parent transforms applied)."""
    if volumeNode is None or volumeNode.GetImageData() is None:
        raise ValueError("The volume has no image data.")
    image = slicer.vtkOrientedImageData()
    image.ShallowCopy(volumeNode.GetImageData())
    imageToWorld = vtk.vtkMatrix4x4()
    slicer.vtkSlicerSegmentEditorLogic.ImageToWorldMatrix(volumeNode, imageToWorld)
    image.SetImageToWorldMatrix(imageToWorld)
    return image


def volumeFromVolumeNode(volumeNode: slicer.vtkMRMLScalarVolumeNode, modality: str = "") -> Volume:
    return volumeFromOrientedImage(orientedImageFromVolumeNode(volumeNode), modality)


def geometryOf(image: slicer.vtkOrientedImageData) -> slicer.vtkOrientedImageData:
    """An image with ``image``'s grid and no voxels: a grid that stays put when the Segment Editor
    later reuses ``image`` for another volume."""
    geometry = slicer.vtkOrientedImageData()
    geometry.SetExtent(image.GetExtent())
    geometry.SetSpacing(image.GetSpacing())
    geometry.SetOrigin(image.GetOrigin())
    geometry.CopyDirections(image)
    return geometry


def labelmapLike(
    geometry: slicer.vtkOrientedImageData,
    mask: np.ndarray,
    extent: tuple[int, int, int, int, int, int] | None = None,
) -> slicer.vtkOrientedImageData:
    """A binary labelmap (unsigned char 0/1) holding ``mask`` ``[k, j, i]`` on ``geometry``'s grid,
    cropped to ``extent`` (in the grid's own indices) when given, to keep per-slice updates small."""
    mask = np.asarray(mask)
    if mask.shape != arrayShape(geometry):
        raise ValueError(f"The mask has shape {mask.shape}; the segmentation grid has {arrayShape(geometry)}.")
    full = geometry.GetExtent()
    extent = tuple(extent) if extent is not None else tuple(full)
    labelmap = croppedGeometry(geometry, extent)
    labelmap.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    i0, i1, j0, j1, k0, k1 = (value - full[2 * (axis // 2)] for axis, value in enumerate(extent))
    voxels = numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars())
    voxels[:] = mask[k0 : k1 + 1, j0 : j1 + 1, i0 : i1 + 1].astype(np.uint8).reshape(-1)
    labelmap.Modified()
    return labelmap


def sliceLabelmap(
    geometry: slicer.vtkOrientedImageData, axis: Axis, index: int, mask: np.ndarray
) -> slicer.vtkOrientedImageData:
    """A binary labelmap holding the 2D ``mask`` ``[y, x]`` on slice ``index`` along ``axis`` of
    ``geometry``'s grid, its extent that one slice: costs one slice, whatever the volume's size."""
    shape = arrayShape(geometry)
    sliceShape = tuple(side for arrayAxis, side in enumerate(shape) if arrayAxis != axis.array_axis)
    if mask.shape != sliceShape:
        raise ValueError(f"The slice mask has shape {mask.shape}; slices of this grid have {sliceShape}.")
    extent = list(geometry.GetExtent())
    vtkAxis = 2 - axis.array_axis  # arrays are [k, j, i], VTK extents (i0, i1, j0, j1, k0, k1)
    extent[2 * vtkAxis] = extent[2 * vtkAxis + 1] = extent[2 * vtkAxis] + index
    oneSlice = croppedGeometry(geometry, tuple(extent))  # type: ignore[arg-type]
    return labelmapLike(oneSlice, np.expand_dims(np.asarray(mask, bool), axis.array_axis))


def croppedGeometry(
    geometry: slicer.vtkOrientedImageData, extent: tuple[int, int, int, int, int, int]
) -> slicer.vtkOrientedImageData:
    """``geometry``'s grid (same voxels, indices and orientation) cut down to ``extent``, no scalars."""
    cropped = slicer.vtkOrientedImageData()
    cropped.SetExtent(extent)
    cropped.SetSpacing(geometry.GetSpacing())
    cropped.SetOrigin(geometry.GetOrigin())
    cropped.CopyDirections(geometry)
    return cropped


def occupiedExtent(mask: np.ndarray, geometry: slicer.vtkOrientedImageData) -> tuple[int, int, int, int, int, int]:
    """VTK extent (i0, i1, j0, j1, k0, k1), in ``geometry``'s own indices, of the bounding box of
    the True voxels of ``mask`` ``[k, j, i]`` (on ``geometry``'s grid, which has some)."""
    start = geometry.GetExtent()[::2]
    k, j, i = (np.flatnonzero(mask.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1)))
    bounds = ((i[0], i[-1]), (j[0], j[-1]), (k[0], k[-1]))
    return tuple(int(value + start[axis]) for axis, pair in enumerate(bounds) for value in pair)  # type: ignore[return-value]
