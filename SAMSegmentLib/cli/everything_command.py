"""``samsegment everything``: every structure the model finds on a slice or slab, one segment each."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..atomic import PlannedOutput, check_outputs, written_together
from ..imageio import SEGMENTATION_SUFFIXES, read_volume, write_segmentation
from ..predictor import VolumePredictor
from ..research.everything import as_segments, segment_everything
from ..research.types import GridOptions
from ..volume import Axis
from .common import add_model_arguments, open_model
from .overlay import display_flips, write_overlay_png
from .progress import progress_bar
from .research_args import add_grid_arguments, grid_options, parse_slice_range

# One label layer of a .seg.nrrd holds at most 255 segments.
_MAX_SEGMENTS = 255


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "everything",
        help="segment every structure on a slice or slab automatically",
        description="Decodes a grid of prompts on each slice, keeps masks of high predicted IoU and stability, "
        "removes duplicates, and joins overlapping masks of neighbouring slices into one segment.",
    )
    parser.add_argument("--image", required=True, type=Path, help="any 3D image SimpleITK reads, or a DICOM folder")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--slice", type=int, help="one slice index along --axis")
    where.add_argument("--slab", help="slices a:b (a to b-1) along --axis")
    parser.add_argument("--axis", default="axial", choices=[a.value for a in Axis])
    parser.add_argument("--output", required=True, type=Path, help="output .seg.nrrd")
    parser.add_argument("--link-iou", type=float, default=0.5, help="IoU joining masks of neighbouring slices")
    parser.add_argument("--png", type=Path, help="also write the first slice with every outline as PNG")
    add_grid_arguments(parser, GridOptions())
    add_model_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_outputs(
        [PlannedOutput("--output", args.output, SEGMENTATION_SUFFIXES), PlannedOutput("--png", args.png, (".png",))],
        inputs=[args.image, args.checkpoint],
    )
    volume = read_volume(args.image, modality=args.modality)
    axis = Axis(args.axis)
    options = grid_options(args, GridOptions())
    if args.slab is not None:
        slices = parse_slice_range(args.slab, volume.slice_count(axis), "--slab")
    else:
        slices = range(args.slice, args.slice + 1)
    predictor = VolumePredictor(open_model(args))
    predictor.set_volume(volume, args.intensity)
    started = time.perf_counter()
    with progress_bar(f"Segmenting everything ({axis.value})", len(slices), unit="slice") as bar:
        result = segment_everything(
            predictor, axis, slices.start, slices.stop - 1, options, args.link_iou, progress=bar.update_to
        )
    elapsed = time.perf_counter() - started
    segments = as_segments(result, volume.array.shape, limit=_MAX_SEGMENTS)
    with written_together() as outputs:  # the segmentation and its PNG, both or neither
        write_segmentation(args.output, volume, segments, outputs)
        if args.png:
            first = slices.start
            outlines = [item.masks[first] for item in result.objects if first in item.masks]
            image = predictor.slice_image(axis, first)
            write_overlay_png(args.png, image, outlines, flips=display_flips(volume, axis), outputs=outputs)
    counts = ", ".join(f"{index}: {count}" for index, count in result.masks_per_slice.items())
    print(f"Masks kept per slice ({counts}) in {elapsed / len(slices):.1f} s per slice.")
    dropped = len(result.objects) - len(segments)
    note = f" ({dropped} of lowest predicted IoU left out: one file holds {_MAX_SEGMENTS})" if dropped > 0 else ""
    print(f"{len(segments)} segments{note}; wrote {args.output}" + (f" and {args.png}" if args.png else ""))
    return 0
