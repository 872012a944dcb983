"""Command-line pieces shared by the research subcommands: slice ranges and prompt-grid options."""

from __future__ import annotations

import argparse
import dataclasses

from ..errors import PromptError
from ..research.types import GridOptions


def parse_slice_range(text: str, count: int, what: str) -> range:
    """``a:b``, ``a:`` or ``:b``: slices a to b-1, as a Python slice, within ``count`` slices."""
    parts = text.split(":")
    if len(parts) != 2:
        raise PromptError(f"{what} '{text}' must be a range like 10:20 (slices 10 to 19).")
    try:
        first = int(parts[0]) if parts[0].strip() else 0
        stop = int(parts[1]) if parts[1].strip() else count
    except ValueError:
        raise PromptError(f"{what} '{text}' must be two whole numbers separated by ':'.") from None
    if not 0 <= first < stop <= count:
        raise PromptError(f"{what} '{text}' is not a non-empty range within the {count} slices (0 to {count}).")
    return range(first, stop)


def add_grid_arguments(parser: argparse.ArgumentParser, defaults: GridOptions) -> None:
    group = parser.add_argument_group("prompt grid and mask filtering")
    group.add_argument(
        "--points-per-side", type=int, default=defaults.points_per_side, help="point models: grid points per side"
    )
    group.add_argument(
        "--box-scales",
        default=",".join(f"{scale:g}" for scale in defaults.box_scales),
        help="box models: box sizes as fractions of the slice side, comma-separated",
    )
    group.add_argument("--min-iou", type=float, default=defaults.min_predicted_iou, help="lowest predicted IoU kept")
    group.add_argument("--min-stability", type=float, default=defaults.min_stability, help="lowest stability kept")
    group.add_argument("--nms-iou", type=float, default=defaults.nms_iou, help="box IoU above which duplicates go")


def grid_options(args: argparse.Namespace, defaults: GridOptions) -> GridOptions:
    try:
        scales = tuple(float(part) for part in args.box_scales.split(","))
        return dataclasses.replace(
            defaults,
            points_per_side=args.points_per_side,
            box_scales=scales,
            min_predicted_iou=args.min_iou,
            min_stability=args.min_stability,
            nms_iou=args.nms_iou,
        )
    except ValueError as error:
        raise PromptError(f"Invalid prompt grid options: {error}") from None
