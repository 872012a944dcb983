"""``samsegment segment``: prompts on one slice to a mask, written as a Slicer segmentation."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..atomic import PlannedOutput, check_outputs, written_together
from ..errors import PromptError
from ..imageio import SEGMENTATION_SUFFIXES, Segment, read_volume, write_segmentation
from ..intensity import mapping_for
from ..prompts import Prompts
from ..propagation import Direction, ObjectPrompts, PropagationRequest
from ..propagation.sam2 import MemoryPolicy
from ..registry import get_spec
from ..segmenter import Segmenter
from ..volume import Axis, put_slice
from .common import add_model_arguments, parse_prompts, parse_slice_indices
from .overlay import display_flips, write_overlay_png
from .progress import progress_bar


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
    parser.add_argument(
        "--box",
        help="box corners a0,b0,a1,b1 (inclusive voxel indices); a box may hang over "
        "the slice edge: write a negative corner with '=', as in --box=-5,10,60,80",
    )
    parser.add_argument("--point", action="append", default=[], help="a,b[,+|-] positive (default) or negative point")
    parser.add_argument("--name", default="Segment", help="segment name written to the output")
    parser.add_argument("--output", required=True, type=Path, help="output .seg.nrrd")
    parser.add_argument("--png", type=Path, help="also write the slice with the mask outline as PNG")
    parser.add_argument("--propagate", action="store_true", help="propagate from --slice through the volume")
    parser.add_argument(
        "--direction",
        choices=[d.value for d in Direction],
        help="with --propagate: which way to propagate (default: both)",
    )
    parser.add_argument("--range", help="with --propagate: first,last slice propagation may reach (inclusive)")
    parser.add_argument(
        "--memory-policy",
        choices=[policy.value for policy in MemoryPolicy],
        help="SAM 2 models: which slices they remember while propagating: recent (SAM 2's default) or "
        "self-sorting (MedSAM-2's memory bank of the most confident, most diverse slices)",
    )
    add_model_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    _refuse_propagation_options_without_propagate(args)
    check_outputs(
        [PlannedOutput("--output", args.output, SEGMENTATION_SUFFIXES), PlannedOutput("--png", args.png, (".png",))],
        inputs=[args.image, args.checkpoint],
    )
    volume = read_volume(args.image, modality=args.modality)
    axis = Axis(args.axis)
    prompts = parse_prompts(args.box, args.point, axis, args.slice)
    prompts.validate(volume.slice_shape(axis), get_spec(args.model))  # before the model loads
    request = _propagation_request(args, axis, prompts, volume.slice_count(axis)) if args.propagate else None
    segmenter = Segmenter(get_spec(args.model), args.device, args.checkpoint, args.backend, args.memory_policy)
    segmenter.set_volume(volume, args.intensity)
    if request is not None:
        mask = _propagate(segmenter, request, args.name)
    else:
        seed = segmenter.segment_slice(axis, args.slice, prompts)
        mask = np.zeros(volume.array.shape, dtype=bool)
        put_slice(mask, axis, args.slice, seed.mask)
        print(
            f"{args.name}: {int(seed.mask.sum())} pixels on {axis.value} slice {args.slice}, "
            f"predicted IoU {seed.score:.3f}"
        )
    with written_together() as outputs:  # the segmentation and its PNG, both or neither
        write_segmentation(args.output, volume, [Segment(args.name, mask)], outputs)
        if args.png:
            seed_mask = np.take(mask, args.slice, axis=axis.array_axis)
            image = mapping_for(volume, args.intensity).apply(volume.slice_2d(axis, args.slice))
            write_overlay_png(args.png, image, [seed_mask], prompts, flips=display_flips(volume, axis), outputs=outputs)
    print(f"wrote {args.output}" + (f" and {args.png}" if args.png else ""))
    return 0


def _refuse_propagation_options_without_propagate(args: argparse.Namespace) -> None:
    # Refused rather than warned about: a user who limits the range expects a propagation, and a
    # warning above a one-slice result is easy to miss in a script that only checks the exit code.
    given = [option for option, value in (("--range", args.range), ("--direction", args.direction)) if value]
    if given and not args.propagate:
        raise PromptError(f"{' and '.join(given)} only apply with --propagate; add --propagate or leave them out.")


def _propagation_request(
    args: argparse.Namespace, axis: Axis, prompts: Prompts, slice_count: int
) -> PropagationRequest:
    slice_range = None
    if args.range:
        first, last = parse_slice_indices(args.range, 2, "--range")
        slice_range = (first, last)
    direction = Direction(args.direction or Direction.BOTH)
    request = PropagationRequest(axis, args.slice, [ObjectPrompts(args.name, prompts)], direction, slice_range)
    try:
        request.bounds(slice_count)
    except ValueError as error:
        raise PromptError(f"--slice {args.slice} and --range {args.range}: {error}") from None
    return request


def _propagate(segmenter: Segmenter, request: PropagationRequest, name: str) -> np.ndarray:
    with progress_bar("propagating", total=None, unit="slice") as bar:
        result = segmenter.propagate_request(request, bar.update_to)
    outcome = result.objects[name]
    if outcome.absent:
        print(f"{name}: the model found nothing at the prompts on slice {request.seed_index}.")
    else:
        print(
            f"{name}: segmented slices {min(outcome.slices)}..{max(outcome.slices)} "
            f"({len(outcome.slices)} slices, {result.embedded_slices} embedded)"
        )
    for stop in outcome.stops:
        print(f"    {stop.direction} stopped after slice {stop.last_index}: {stop.reason}")
    return outcome.mask
