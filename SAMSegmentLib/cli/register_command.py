"""``samsegment register``: align two images of different modality through one structure segmented in both."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..atomic import OutputSet, PlannedOutput, check_outputs, written_together
from ..imageio import read_labels, read_volume
from ..intensity import mapping_for
from ..research.registration import (
    TRANSFORM_SUFFIXES,
    RegistrationOptions,
    checkerboard,
    register_with_masks,
    resample_onto,
    write_transform,
)
from ..volume import Volume
from .overlay import write_overlay_png
from .progress import progress_bar


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "register",
        help="register a moving image to a fixed one through the same structure segmented in both",
        description="Aligns the masks (centroids, then their distance maps), refines with image edges near the "
        "structure, and writes an ITK transform file. In Slicer, load it and place the moving volume under it.",
    )
    parser.add_argument("--fixed", required=True, type=Path, help="fixed image")
    parser.add_argument("--fixed-mask", required=True, type=Path, help="the structure in the fixed image (labels)")
    parser.add_argument("--moving", required=True, type=Path, help="moving image")
    parser.add_argument("--moving-mask", required=True, type=Path, help="the same structure in the moving image")
    parser.add_argument("--fixed-label", type=int, help="label value of the structure (default: any non-zero)")
    parser.add_argument("--moving-label", type=int, help="label value of the structure (default: any non-zero)")
    parser.add_argument("--output", required=True, type=Path, help="transform file: .tfm, .txt or .h5")
    parser.add_argument("--affine", action="store_true", help="also fit scaling and shear (default: rigid)")
    parser.add_argument("--no-edges", action="store_true", help="skip the refinement by image edges")
    parser.add_argument("--band-mm", type=float, default=10.0, help="edges are compared this close to the structure")
    parser.add_argument("--png", type=Path, help="also write a checkerboard of the two images through the structure")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_outputs(
        [PlannedOutput("--output", args.output, TRANSFORM_SUFFIXES), PlannedOutput("--png", args.png, (".png",))],
        inputs=[args.fixed, args.fixed_mask, args.moving, args.moving_mask],
    )
    fixed, moving = read_volume(args.fixed), read_volume(args.moving)
    fixed_mask = _mask(args.fixed_mask, fixed, args.fixed_label)
    moving_mask = _mask(args.moving_mask, moving, args.moving_label)
    options = RegistrationOptions(affine=args.affine, edge_refinement=not args.no_edges, band_mm=args.band_mm)
    with progress_bar("Registering", None, unit="step") as bar:

        def show(done: int, total: int, stage: str = "") -> None:
            bar.set_description(f"Registering ({stage})", refresh=False)
            bar.update(1)

        result = register_with_masks(fixed, fixed_mask, moving, moving_mask, options, progress=show)
    with written_together() as outputs:  # the transform and its PNG, both or neither
        write_transform(args.output, result.transform, outputs)
        if args.png:
            _write_checkerboard(args.png, fixed, fixed_mask, moving, moving_mask, result.transform, outputs)
    edges = "kept" if result.edge_refined else "not kept"
    print(
        f"Mask Dice: {result.dice_identity:.3f} before, {result.dice_centroids:.3f} with centroids aligned, "
        f"{result.dice_masks:.3f} after the mask stage, {result.dice_final:.3f} final (edge refinement {edges})."
    )
    print(f"wrote {args.output}" + (f" and {args.png}" if args.png else ""))
    return 0


def _mask(path: Path, volume: Volume, label: int | None) -> np.ndarray:
    labels = read_labels(path, volume)
    return labels == label if label is not None else labels != 0


def _write_checkerboard(
    path: Path,
    fixed: Volume,
    fixed_mask: np.ndarray,
    moving: Volume,
    moving_mask: np.ndarray,
    transform: sitk.Transform,
    outputs: OutputSet,
) -> None:
    """The axial slice through the fixed structure's centre: the two images in a checkerboard, with
    the fixed mask's and the moved mask's outlines."""
    index = round(float(np.argwhere(fixed_mask)[:, 0].mean()))
    fixed01 = mapping_for(fixed).apply(fixed.array[index])
    moved = resample_onto(fixed, moving, moving.array.astype(np.float32), transform)
    moved01 = mapping_for(moving).apply(moved[index])
    moved_mask = resample_onto(fixed, moving, moving_mask.astype(np.uint8), transform, nearest=True)[index] > 0
    write_overlay_png(path, checkerboard(fixed01, moved01), [fixed_mask[index], moved_mask], outputs=outputs)
