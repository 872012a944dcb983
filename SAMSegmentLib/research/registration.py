"""Register two images of different modality through the same structure segmented in both
(as in SAM-based CT / X-ray fusion): the masks give the correspondence, image edges refine it.

1. The moving mask's centroid is moved onto the fixed mask's (image moments).
2. A rigid (optionally then affine) transform matches the masks' signed distance maps, a smooth
   measure of mask overlap that still pulls when the masks do not yet overlap.
3. An edge term refines it rigidly inside a band around the fixed mask: each image's gradient
   magnitude is turned into an edge map that saturates (|g| / (|g| + its 75th percentile)), and the
   two edge maps are matched by mutual information. Edge strengths differ between modalities (an
   inverted or non-linear intensity scale reorders them), their places do not. The refinement is
   kept only if the masks still agree as well.

Transforms follow ITK: they map fixed-image physical points (LPS, as SimpleITK reads files) to
moving-image points, i.e. they resample the moving image onto the fixed one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..atomic import OutputError, OutputSet, write_file
from ..cancel import CancelToken, Progress
from ..errors import CancelledError, InputImageError
from ..metrics import dice
from ..volume import Volume
from .sitk_images import image_on_grid, volume_image

# First optimiser step: the mask stage may still have to move centimetres; the edge stage only refines.
_MASK_STEP_MM = 2.0
_EDGE_STEP_MM = 0.5


@dataclass(frozen=True)
class RegistrationOptions:
    affine: bool = False  # after the rigid stage, also fit scaling and shear to the masks
    edge_refinement: bool = True
    band_mm: float = 10.0  # half-width of the band around the fixed mask where edges are compared
    edge_sigma_mm: float = 1.5  # smoothing of the gradient magnitude
    edge_histogram_bins: int = 32
    distance_clip_mm: float = 50.0  # far from the masks the distance maps say nothing useful
    iterations: int = 200  # per resolution level
    shrink_factors: tuple[int, ...] = (4, 2, 1)
    smoothing_mm: tuple[float, ...] = (4.0, 2.0, 0.0)
    max_dice_loss: float = 0.01  # refinement is dropped if it lowers the mask Dice more than this


@dataclass
class RegistrationResult:
    transform: sitk.AffineTransform  # fixed physical point (LPS) -> moving physical point
    dice_identity: float  # mask Dice before registration
    dice_centroids: float  # after aligning the mask centroids
    dice_masks: float  # after the mask stage(s)
    dice_final: float
    edge_refined: bool  # whether the edge refinement was kept


def register_with_masks(
    fixed: Volume,
    fixed_mask: np.ndarray,
    moving: Volume,
    moving_mask: np.ndarray,
    options: RegistrationOptions | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> RegistrationResult:
    """Find the transform that maps ``moving`` onto ``fixed``, given the same structure's mask in each.

    ``progress`` gets each optimiser iteration (``total`` 0: the optimiser decides when it has
    converged) with its stage; ``cancel`` is checked at every iteration: once set, the optimiser
    stops and CancelledError is raised.
    """
    options = options or RegistrationOptions()
    fixed_mask = _checked_mask(fixed_mask, fixed, "fixed")
    moving_mask = _checked_mask(moving_mask, moving, "moving")
    fixed_binary = image_on_grid(fixed_mask.astype(np.uint8), fixed)
    moving_binary = image_on_grid(moving_mask.astype(np.uint8), moving)

    def mask_dice(transform: sitk.Transform) -> float:
        return dice(resample_onto(fixed, moving, moving_mask.astype(np.uint8), transform, nearest=True), fixed_mask)

    rigid = sitk.CenteredTransformInitializer(
        sitk.Cast(fixed_binary, sitk.sitkFloat32),
        sitk.Cast(moving_binary, sitk.sitkFloat32),
        sitk.Euler3DTransform(),
        sitk.CenteredTransformInitializerFilter.MOMENTS,
    )
    rigid = sitk.Euler3DTransform(rigid)
    dice_identity = mask_dice(sitk.Euler3DTransform())
    dice_centroids = mask_dice(rigid)

    fixed_distance = _distance_map(fixed_binary, options.distance_clip_mm)
    moving_distance = _distance_map(moving_binary, options.distance_clip_mm)
    _optimise(
        _mean_squares(),
        fixed_distance,
        moving_distance,
        rigid,
        options,
        "rigid masks",
        progress,
        cancel,
        _MASK_STEP_MM,
    )
    transform = _as_affine(rigid)
    if options.affine:
        _optimise(
            _mean_squares(),
            fixed_distance,
            moving_distance,
            transform,
            options,
            "affine masks",
            progress,
            cancel,
            _MASK_STEP_MM,
        )
    dice_masks = mask_dice(transform)

    final, dice_final, refined = transform, dice_masks, False
    if options.edge_refinement:
        candidate = _edge_refined(fixed, fixed_mask, moving, transform, options, progress, cancel)
        candidate_dice = mask_dice(candidate)
        if candidate_dice >= dice_masks - options.max_dice_loss:
            final, dice_final, refined = candidate, candidate_dice, True
    return RegistrationResult(final, dice_identity, dice_centroids, dice_masks, dice_final, refined)


def _checked_mask(mask: np.ndarray, volume: Volume, role: str) -> np.ndarray:
    mask = np.asarray(mask).astype(bool)
    if mask.shape != volume.array.shape:
        raise InputImageError(
            f"The {role} mask has shape {mask.shape}; the {role} image {volume.array.shape}. Segment the "
            f"structure on the {role} image itself."
        )
    if not mask.any():
        raise InputImageError(f"The {role} mask is empty: segment the structure in the {role} image first.")
    return mask


def _distance_map(binary: sitk.Image, clip_mm: float) -> sitk.Image:
    distance = sitk.SignedMaurerDistanceMap(binary, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
    return sitk.Clamp(sitk.Cast(distance, sitk.sitkFloat32), sitk.sitkFloat32, -clip_mm, clip_mm)


def _mean_squares() -> sitk.ImageRegistrationMethod:
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMeanSquares()
    return method


def _optimise(
    method: sitk.ImageRegistrationMethod,
    fixed: sitk.Image,
    moving: sitk.Image,
    transform: sitk.Transform,
    options: RegistrationOptions,
    stage: str,
    progress: Progress | None,
    cancel: CancelToken | None,
    first_step_mm: float,
    levels: bool = True,
) -> None:
    """Optimise ``transform`` in place on a (multi-resolution) pyramid."""
    method.SetInterpolator(sitk.sitkLinear)
    # Regular-step descent: plain gradient descent with estimated learning rates stalled on
    # distance maps. Steps are in mm (scales from physical shift) and halve on each overshoot.
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=first_step_mm,
        minStep=1e-3,
        numberOfIterations=options.iterations,
        relaxationFactor=0.5,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(options.shrink_factors) if levels else [1])
    method.SetSmoothingSigmasPerLevel(list(options.smoothing_mm) if levels else [0.0])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(transform, inPlace=True)
    if progress is not None:
        method.AddCommand(sitk.sitkIterationEvent, lambda: progress(method.GetOptimizerIteration(), 0, stage))
    if cancel is not None:
        # SimpleITK swallows exceptions raised in a command, so the command stops the optimiser instead.
        method.AddCommand(sitk.sitkIterationEvent, lambda: cancel.cancelled and method.StopRegistration())
    method.Execute(fixed, moving)
    if cancel is not None and cancel.cancelled:
        raise CancelledError("Registration cancelled; no transform was made.")


def _edge_refined(
    fixed: Volume,
    fixed_mask: np.ndarray,
    moving: Volume,
    start: sitk.AffineTransform,
    options: RegistrationOptions,
    progress: Progress | None,
    cancel: CancelToken | None,
) -> sitk.AffineTransform:
    """``start`` refined by matching edge maps inside a band around the fixed mask."""
    fixed_edges = _edge_map(fixed, options.edge_sigma_mm)
    moving_edges = _edge_map(moving, options.edge_sigma_mm)
    band = _band(fixed_mask, fixed.spacing, options.band_mm)
    method = sitk.ImageRegistrationMethod()
    # Mutual information: on the synthetic CT pairs, correlating raw gradient magnitudes pulled the
    # result millimetres away, because the modality change reorders which edges are strongest.
    method.SetMetricAsMattesMutualInformation(options.edge_histogram_bins)
    method.SetMetricFixedMask(image_on_grid(band.astype(np.uint8), fixed))
    # A small rigid correction applied before the mask result (a composite optimises only its
    # last-added part), rotating about the structure: the masks already fixed scaling and shear.
    correction = sitk.Euler3DTransform()
    correction.SetCenter(tuple(fixed.ijk_to_physical(np.argwhere(fixed_mask).mean(axis=0)[::-1])))
    refined = sitk.CompositeTransform([sitk.AffineTransform(start), correction])
    _optimise(
        method, fixed_edges, moving_edges, refined, options, "edges", progress, cancel, _EDGE_STEP_MM, levels=False
    )
    return _as_affine(refined)


def _edge_map(volume: Volume, sigma_mm: float) -> sitk.Image:
    """Gradient magnitude squashed to [0, 1): about 0.5 at the image's 75th percentile, near 1 on
    any clear edge, so that weak and strong edges of either modality count alike."""
    magnitude = sitk.GradientMagnitudeRecursiveGaussian(volume_image(volume), sigma_mm)
    typical = float(np.percentile(sitk.GetArrayViewFromImage(magnitude), 75)) or 1.0
    return sitk.Divide(magnitude, sitk.Add(magnitude, typical))


def _band(mask: np.ndarray, spacing: tuple[float, float, float], band_mm: float) -> np.ndarray:
    """Voxels within ``band_mm`` of the mask's surface, inside or outside."""
    sampling = (spacing[2], spacing[1], spacing[0])  # [k, j, i] order
    outside = ndimage.distance_transform_edt(~mask, sampling=sampling)
    inside = ndimage.distance_transform_edt(mask, sampling=sampling)
    return (outside <= band_mm) & (inside <= band_mm)


def _as_affine(transform: sitk.Transform) -> sitk.AffineTransform:
    """Any linear transform as a plain affine one (centred at the origin), which every ITK
    reader, Slicer's included, loads."""
    origin = np.zeros(3)
    offset = np.asarray(transform.TransformPoint(tuple(origin)))
    matrix = np.column_stack([np.asarray(transform.TransformPoint(tuple(axis))) - offset for axis in np.eye(3)])
    return sitk.AffineTransform(tuple(matrix.reshape(-1)), tuple(offset))


def resample_onto(
    fixed: Volume, moving: Volume, moving_array: np.ndarray, transform: sitk.Transform, nearest: bool = False
) -> np.ndarray:
    """``moving_array`` (on the moving grid) resampled onto the fixed grid through ``transform``."""
    image = image_on_grid(np.asarray(moving_array), moving)
    reference = image_on_grid(np.zeros(fixed.array.shape, dtype=np.uint8), fixed)
    interpolator = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    resampled = sitk.Resample(image, reference, transform, interpolator, 0.0, image.GetPixelID())
    return sitk.GetArrayFromImage(resampled)


# The ITK transform files Slicer loads (ITK picks the format by the ending).
TRANSFORM_SUFFIXES = (".tfm", ".txt", ".h5", ".hdf5", ".mat")


def write_transform(path: str | os.PathLike[str], transform: sitk.Transform, outputs: OutputSet | None = None) -> Path:
    """Write an ITK transform file (.tfm, .txt or .h5) that Slicer loads as a linear transform node.

    ITK files hold the resampling transform in LPS; Slicer converts it to RAS on reading and
    treats it as its "from parent" transform, so placing the moving volume under the loaded node
    shows it aligned with the fixed one (harden the transform to resample it). With ``outputs``
    the file is renamed into place with the rest of that set.
    """
    path = Path(path)
    if not path.name.lower().endswith(TRANSFORM_SUFFIXES):
        raise OutputError(f"{path.name}: write the transform as .tfm, .txt or .h5 (an ITK transform file).")
    return write_file(
        path,
        lambda temporary: sitk.WriteTransform(transform, str(temporary)),
        lambda temporary: _written_transform_problem(temporary, transform),
        outputs,
    )


def _written_transform_problem(path: Path, expected: sitk.Transform) -> str | None:
    """What differs between the transform file and ``expected`` (ITK's writer does not report a full disk)."""
    try:
        written = sitk.ReadTransform(str(path))
    except RuntimeError as error:
        return f"the written transform does not read back ({str(error).strip().splitlines()[-1]})"
    same = np.allclose(written.GetParameters(), expected.GetParameters(), rtol=1e-6, atol=1e-9) and np.allclose(
        written.GetFixedParameters(), expected.GetFixedParameters(), rtol=1e-6, atol=1e-9
    )
    return None if same else "the written transform reads back with other parameters"


# LPS <-> RAS: the two frames differ by the sign of their first two axes.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def slicer_to_parent_matrix(transform: sitk.Transform) -> np.ndarray:
    """The 4x4 RAS matrix for ``vtkMRMLLinearTransformNode.SetMatrixTransformToParent``: it maps
    moving-image RAS points to fixed-image RAS points, so the moving volume placed under the node
    lines up with the fixed one. (The ITK transform is the inverse mapping, in LPS.)"""
    resampling = np.eye(4)
    resampling[:3, :3] = _linear_part(transform)
    resampling[:3, 3] = transform.TransformPoint((0.0, 0.0, 0.0))
    return np.linalg.inv(_LPS_TO_RAS @ resampling @ _LPS_TO_RAS)


@dataclass
class TransformError:
    mean_mm: float  # mean distance between where the two transforms send the points
    max_mm: float
    rotation_deg: float  # angle of the rotation between their linear parts' rotations


def transform_error(recovered: sitk.Transform, truth: sitk.Transform, points: np.ndarray) -> TransformError:
    """How far ``recovered`` is from ``truth`` at physical ``points`` (N x 3) and in rotation."""
    distances = [
        np.linalg.norm(np.subtract(recovered.TransformPoint(tuple(p)), truth.TransformPoint(tuple(p)))) for p in points
    ]
    relative = _rotation(_linear_part(recovered)).T @ _rotation(_linear_part(truth))
    angle = np.degrees(np.arccos(np.clip((np.trace(relative) - 1.0) / 2.0, -1.0, 1.0)))
    return TransformError(float(np.mean(distances)), float(np.max(distances)), float(angle))


def _linear_part(transform: sitk.Transform) -> np.ndarray:
    offset = np.asarray(transform.TransformPoint((0.0, 0.0, 0.0)))
    return np.column_stack([np.asarray(transform.TransformPoint(tuple(axis))) - offset for axis in np.eye(3)])


def _rotation(matrix: np.ndarray) -> np.ndarray:
    """The rotation of a linear map (polar decomposition), its scaling and shear removed."""
    left, _, right = np.linalg.svd(matrix)
    return left @ right


def mask_points(volume: Volume, mask: np.ndarray, limit: int = 5000) -> np.ndarray:
    """Physical coordinates of (at most ``limit``, evenly picked) voxels of ``mask``."""
    kji = np.argwhere(mask)
    kji = kji[:: max(1, len(kji) // limit)]
    return volume.ijk_to_physical(kji[:, ::-1])


def checkerboard(fixed01: np.ndarray, moving01: np.ndarray, squares: int = 8) -> np.ndarray:
    """Two same-shaped 2D images interleaved in a checkerboard of ``squares`` per side, to judge
    alignment where edges cross square borders."""
    height, width = fixed01.shape
    rows = (np.arange(height) * squares // max(1, height))[:, None]
    columns = (np.arange(width) * squares // max(1, width))[None, :]
    return np.where((rows + columns) % 2 == 0, fixed01, moving01)
