"""Argument parsing and model loading shared by the subcommands."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..backends import BACKEND_CHOICES
from ..device import DEVICE_CHOICES
from ..errors import PromptError
from ..intensity import PRESETS
from ..model_choice import ModelChoice
from ..models import PromptableModel
from ..prompts import Prompts
from ..volume import Axis, ijk_to_slice


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default="litemedsam",
        help="a model of `samsegment models`, fine-tuned ones included (default: litemedsam)",
    )
    parser.add_argument("--checkpoint", type=Path, help="use this checkpoint file instead of the cached one")
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="compute device (default: auto)")
    parser.add_argument(
        "--backend",
        default="auto",
        choices=BACKEND_CHOICES,
        help="auto: ONNX Runtime where it is installed and fits the device, else torch",
    )
    parser.add_argument(
        "--intensity",
        default="auto",
        choices=PRESETS,
        help="intensity mapping: auto (decided at the prompt) or a preset (default: auto)",
    )
    parser.add_argument("--modality", default="", help="CT, MR, ... (default: guessed from the voxel values)")


def model_choice(args: argparse.Namespace) -> ModelChoice:
    return ModelChoice(args.model, args.checkpoint, args.device, args.backend)


def open_model(args: argparse.Namespace) -> PromptableModel:
    return model_choice(args).open()


def parse_numbers(text: str, count: int, what: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise PromptError(f"{what} '{text}' must be {count} comma-separated numbers.") from None
    if len(values) != count:
        raise PromptError(f"{what} '{text}' must be {count} comma-separated numbers, got {len(values)}.")
    return values


def parse_slice_indices(text: str, count: int, what: str) -> list[int]:
    """``count`` comma-separated slice indices; a fraction, NaN or infinity is refused, not truncated."""
    values = parse_numbers(text, count, what)
    if not all(math.isfinite(value) and value == int(value) for value in values):
        raise PromptError(f"{what} '{text}' must be whole slice numbers.")
    return [int(value) for value in values]


def parse_prompts(box: str | None, points: list[str], axis: Axis, index: int) -> Prompts:
    """Prompts given as in-plane voxel indices (ijk order, the slice axis left out) to slice (x, y)."""
    prompts = Prompts()
    if box:
        a0, b0, a1, b1 = parse_numbers(box, 4, "--box")
        prompts.box = (*_in_plane(axis, index, a0, b0), *_in_plane(axis, index, a1, b1))
    for text in points:
        parts = text.split(",")
        positive = True
        if len(parts) == 3:
            sign = parts.pop().strip()
            if sign not in ("+", "-"):
                raise PromptError(f"--point '{text}': the third part must be + or -.")
            positive = sign == "+"
        a, b = parse_numbers(",".join(parts), 2, "--point")
        prompts.add_point(*_in_plane(axis, index, a, b), positive=positive)
    return prompts


def _in_plane(axis: Axis, index: int, a: float, b: float) -> tuple[float, float]:
    # Rebuild full ijk with the slice index in the fixed axis, then take the slice's (x, y).
    ijk = {Axis.AXIAL: (a, b, index), Axis.CORONAL: (a, index, b), Axis.SAGITTAL: (index, a, b)}[axis]
    return ijk_to_slice(axis, ijk)[1]
