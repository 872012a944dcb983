"""Read volumes with SimpleITK and write segmentations that 3D Slicer opens as segmentation nodes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .atomic import OutputError, OutputSet, write_file
from .errors import InputImageError
from .image_integrity import check_image_complete, image_problem
from .volume import Volume

if TYPE_CHECKING:
    import SimpleITK as sitk

# The formats a segmentation is written in, chosen by the output's name.
SEGMENTATION_SUFFIXES = (".seg.nrrd", ".nrrd", ".nii", ".nii.gz")
_GZIP_MAGIC = b"\x1f\x8b"

# Distinct, colour-blind-friendly segment colours (Okabe-Ito), cycled.
SEGMENT_COLOURS = (
    (0.90, 0.62, 0.00),
    (0.34, 0.71, 0.91),
    (0.00, 0.62, 0.45),
    (0.94, 0.89, 0.26),
    (0.00, 0.45, 0.70),
    (0.84, 0.37, 0.00),
    (0.80, 0.47, 0.65),
)


@dataclass
class Segment:
    name: str
    mask: np.ndarray  # bool [k, j, i] on the volume grid


def read_volume(path: str | os.PathLike[str], modality: str = "") -> Volume:
    """Read any 3D scalar image SimpleITK can read (NIfTI, NRRD, MHA, a DICOM series folder)."""
    import SimpleITK as sitk

    path = Path(path)
    if not path.exists():
        raise InputImageError(f"{path} does not exist.")
    try:
        if path.is_dir():
            reader = sitk.ImageSeriesReader()
            files = reader.GetGDCMSeriesFileNames(str(path))
            if not files:
                raise InputImageError(f"{path} is a folder with no DICOM series in it.")
            reader.SetFileNames(files)
            image = reader.Execute()
            modality = modality or _dicom_modality(files[0])
        else:
            check_image_complete(path)  # SimpleITK reads a cut NIfTI as zeros past the cut
            image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise InputImageError(f"{path} could not be read as an image: {str(error).strip().splitlines()[-1]}") from error
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputImageError(
            f"{path} has {image.GetNumberOfComponentsPerPixel()} components per voxel (colour or vector image); "
            "SAMSegment needs a scalar volume."
        )
    if image.GetDimension() != 3:
        raise InputImageError(f"{path} is a {image.GetDimension()}D image; SAMSegment needs a 3D volume.")
    return Volume(
        array=sitk.GetArrayFromImage(image),
        spacing=image.GetSpacing(),
        origin=image.GetOrigin(),
        direction=np.asarray(image.GetDirection()).reshape(3, 3),
        modality=modality,
    )


def _dicom_modality(first_file: str) -> str:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(first_file)
    reader.ReadImageInformation()
    return reader.GetMetaData("0008|0060").strip() if reader.HasMetaDataKey("0008|0060") else ""


def write_segmentation(
    path: str | os.PathLike[str], volume: Volume, segments: Sequence[Segment], outputs: OutputSet | None = None
) -> Path:
    """Write ``segments`` on the volume's geometry (one label per segment): a Slicer ``.seg.nrrd``,
    or a label map in the format the name asks for (``.nrrd``, ``.nii``, ``.nii.gz``).

    Overlapping segments cannot share one label layer; later segments win where they overlap.
    With ``outputs`` the file is renamed into place with the rest of that set.
    """
    path = Path(path)
    if not path.name.lower().endswith(SEGMENTATION_SUFFIXES):
        raise OutputError(f"{path}: write a segmentation as {', '.join(SEGMENTATION_SUFFIXES)}.")
    return write_image(path, segmentation_image(volume, segments), outputs)


def segmentation_image(volume: Volume, segments: Sequence[Segment]) -> sitk.Image:
    """The label image of ``segments`` with the header fields Slicer reads as segment names and colours."""
    import SimpleITK as sitk

    labels = np.zeros(volume.array.shape, dtype=np.uint8)
    for value, segment in enumerate(segments, start=1):
        if segment.mask.shape != labels.shape:
            raise ValueError(f"Segment '{segment.name}' has shape {segment.mask.shape}, the volume {labels.shape}.")
        labels[segment.mask.astype(bool)] = value
    image = sitk.GetImageFromArray(labels)
    image.SetSpacing(volume.spacing)
    image.SetOrigin(volume.origin)
    image.SetDirection(tuple(np.asarray(volume.direction).reshape(-1)))
    ni, nj, nk = volume.shape_ijk
    image.SetMetaData("Segmentation_MasterRepresentation", "Binary labelmap")
    image.SetMetaData("Segmentation_ContainedRepresentationNames", "Binary labelmap|")
    image.SetMetaData("Segmentation_ReferenceImageExtentOffset", "0 0 0")
    for number, segment in enumerate(segments):
        colour = SEGMENT_COLOURS[number % len(SEGMENT_COLOURS)]
        prefix = f"Segment{number}_"
        image.SetMetaData(prefix + "ID", f"Segment_{number + 1}")
        image.SetMetaData(prefix + "Name", segment.name)
        image.SetMetaData(prefix + "NameAutoGenerated", "0")
        image.SetMetaData(prefix + "Color", " ".join(f"{c:g}" for c in colour))
        image.SetMetaData(prefix + "ColorAutoGenerated", "0")
        image.SetMetaData(prefix + "LabelValue", str(number + 1))
        image.SetMetaData(prefix + "Layer", "0")
        image.SetMetaData(prefix + "Extent", f"0 {ni - 1} 0 {nj - 1} 0 {nk - 1}")
        image.SetMetaData(prefix + "Tags", "Segmentation.Status:inprogress|")
    return image


def write_image(path: str | os.PathLike[str], image: sitk.Image, outputs: OutputSet | None = None) -> Path:
    """Write ``image`` (compressed where the format allows) and check it reads back as written."""
    import SimpleITK as sitk

    return write_file(
        path,
        lambda temporary: sitk.WriteImage(image, str(temporary), useCompression=True),
        lambda temporary: _written_image_problem(temporary, image),
        outputs,
    )


def _written_image_problem(path: Path, expected: sitk.Image) -> str | None:
    """What differs between the image file at ``path`` and ``expected``, or None.

    SimpleITK's writers leave a cut file on a full disk without an error, and its readers take a
    cut file as whole (zeros past the cut, or a gzip stream cut in its last bytes): the file's
    length or the gzip stream's own end is checked first, then the voxels and geometry as read back.
    """
    import SimpleITK as sitk

    problem = image_problem(path)
    if problem is not None:
        return f"the written file {problem} (is the disk full?)"
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        return f"the written file does not read back ({str(error).strip().splitlines()[-1]})"
    geometry_matches = (
        image.GetSize() == expected.GetSize()
        and image.GetNumberOfComponentsPerPixel() == expected.GetNumberOfComponentsPerPixel()
        # NIfTI stores the geometry in float32.
        and np.allclose(image.GetSpacing(), expected.GetSpacing(), rtol=1e-5)
        and np.allclose(image.GetOrigin(), expected.GetOrigin(), rtol=1e-5, atol=1e-3)
        and np.allclose(image.GetDirection(), expected.GetDirection(), atol=1e-5)
    )
    if not geometry_matches:
        return "the written file reads back with another size or geometry"
    if not np.array_equal(sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(expected)):
        return "the written file reads back with other voxel values"
    return None


def read_labels(path: str | os.PathLike[str], volume: Volume) -> np.ndarray:
    """Read a label image onto ``volume``'s voxel grid, as ``[k, j, i]``.

    A label image on another grid (rows or slices stored the other way, another origin or
    spacing) is resampled by physical position, taking the nearest voxel's label: each voxel gets
    the label of the same place in the patient, never of the same array index. It must cover the
    whole volume.
    """
    import SimpleITK as sitk

    from .research.sitk_images import image_on_grid

    image = sitk.ReadImage(str(path))
    if image.GetDimension() != 3:
        raise InputImageError(f"{path} is a {image.GetDimension()}D image; labels need a 3D image.")
    grid = image_on_grid(np.zeros(volume.array.shape, np.uint8), volume)
    if _same_grid(image, grid):
        return sitk.GetArrayFromImage(image)
    if not _covers(image, grid):
        raise InputImageError(
            f"{path} (size {image.GetSize()}, spacing {image.GetSpacing()}, origin {image.GetOrigin()}) does not "
            f"cover the image (size {grid.GetSize()}, spacing {grid.GetSpacing()}, origin {grid.GetOrigin()}): "
            "they are not of the same scan."
        )
    resampled = sitk.Resample(image, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, image.GetPixelID())
    return sitk.GetArrayFromImage(resampled)


def _same_grid(image: sitk.Image, grid: sitk.Image) -> bool:
    return (
        image.GetSize() == grid.GetSize()
        and np.allclose(image.GetSpacing(), grid.GetSpacing(), rtol=1e-4)
        and np.allclose(image.GetDirection(), grid.GetDirection(), atol=1e-4)
        and np.allclose(image.GetOrigin(), grid.GetOrigin(), atol=1e-3 * min(grid.GetSpacing()))
    )


def _covers(image: sitk.Image, grid: sitk.Image) -> bool:
    """Whether every voxel centre of ``grid`` lies inside ``image`` (within a tenth of a voxel)."""
    sizes = np.asarray(image.GetSize())
    for corner in np.ndindex(2, 2, 2):
        index = [int(c * (n - 1)) for c, n in zip(corner, grid.GetSize())]
        inside = np.asarray(image.TransformPhysicalPointToContinuousIndex(grid.TransformIndexToPhysicalPoint(index)))
        if np.any(inside < -0.6) or np.any(inside > sizes - 0.4):
            return False
    return True
