"""``samsegment segment``: prompts on one slice to a mask, written as a Slicer segmentation."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..imageio import Segment, read_volume, write_segmentation
from ..predictor import VolumePredictor
from ..prompts import Prompts
from ..propagation import CancelToken, Direction, ObjectPrompts, PropagationRequest
from ..volume import Axis, put_slice
from ..worker.propagators import make_propagator
from .common import add_model_arguments, open_model, parse_numbers, parse_prompts
from .progress import progress_bar
from .overlay import write_overlay_png


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="segment a structure from prompts on one slice",
        description="Prompts are voxel indices of the image in (i, j, k) order with the slice axis left out: "
        "for an axial slice, i (column) and j (row).",
    )
    parser.add_argument("--image", required=True, type=Path, help="any 3D image SimpleITK reads, or a DICOM folder")
    parser.add_argument("--slice", required=True, type=int, help="slice index along --axis")
    parser.add_argument("--axis", default="axial", choices=[a.value for a in Axis])
    parser.add_argument("--box", help="box corners a0,b0,a1,b1 (inclusive voxel indices)")
    parser.add_argument("--point", action="append", default=[], help="a,b[,+|-] positive (default) or negative point")
    parser.add_argument("--name", default="Segment", help="segment name written to the output")
    parser.add_argument("--output", required=True, type=Path, help="output .seg.nrrd")
    parser.add_argument("--png", type=Path, help="also write the slice with the mask outline as PNG")
    parser.add_argument("--propagate", action="store_true", help="propagate from --slice through the volume")
    parser.add_argument("--direction", default="both", choices=[d.value for d in Direction])
    parser.add_argument("--range", help="first,last slice propagation may reach (inclusive)")
    add_model_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    volume = read_volume(args.image, modality=args.modality)
    axis = Axis(args.axis)
    prompts = parse_prompts(args.box, args.point, axis, args.slice)
    predictor = VolumePredictor(open_model(args))
    predictor.set_volume(volume, args.preset)
    prompts.validate(volume.slice_shape(axis), predictor.model.spec)
    if args.propagate:
        mask = _propagate(predictor, args, axis, prompts)
    else:
        prediction = predictor.predict(axis, args.slice, prompts)
        mask = np.zeros(volume.array.shape, dtype=bool)
        put_slice(mask, axis, args.slice, prediction.mask)
        print(f"{args.name}: {int(prediction.mask.sum())} pixels on {axis.value} slice {args.slice}, "
              f"predicted IoU {prediction.score:.3f}")
    written = write_segmentation(args.output, volume, [Segment(args.name, mask)])
    print(f"wrote {written}")
    if args.png:
        seed_mask = np.take(mask, args.slice, axis=axis.array_axis)
        write_overlay_png(args.png, predictor.slice_image(axis, args.slice), [seed_mask], prompts)
        print(f"wrote {args.png}")
    return 0


def _propagate(predictor: VolumePredictor, args: argparse.Namespace, axis: Axis, prompts: Prompts) -> np.ndarray:
    slice_range = None
    if args.range:
        first, last = parse_numbers(args.range, 2, "--range")
        slice_range = (int(first), int(last))
    request = PropagationRequest(axis, args.slice, [ObjectPrompts(args.name, prompts)], Direction(args.direction),
                                 slice_range)
    with progress_bar("propagating", total=None, unit="slice") as bar:
        propagator = make_propagator(predictor, request, None, CancelToken(), bar.update_to)
        for _ in propagator:
            pass
    outcome = propagator.result.objects[args.name]
    if outcome.absent:
        print(f"{args.name}: the model found nothing at the prompts on slice {args.slice}.")
    else:
        print(f"{args.name}: segmented slices {min(outcome.slices)}..{max(outcome.slices)} "
              f"({len(outcome.slices)} slices, {predictor.embed_count} embedded)")
    for stop in outcome.stops:
        print(f"    {stop.direction} stopped after slice {stop.last_index}: {stop.reason}")
    return outcome.mask
