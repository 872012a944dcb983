"""A PNG of a slice with mask outlines and prompts, for a quick look without Slicer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..atomic import OutputSet, write_file
from ..imageio import SEGMENT_COLOURS
from ..prompts import POSITIVE, Prompts
from ..volume import Axis, Volume, in_plane_ijk_axes

_POSITIVE_RGB = (0, 255, 0)
_NEGATIVE_RGB = (255, 0, 0)
_BOX_RGB = (255, 255, 0)


def display_flips(volume: Volume, axis: Axis) -> tuple[bool, bool]:
    """(flip rows, flip columns) that show a slice as radiologists and Slicer do: anterior or
    superior up, the patient's right on the left of axial and coronal views, anterior on the
    left of sagittal views. Decided from the direction matrix (LPS), not the array order."""
    x_axis, y_axis = in_plane_ijk_axes(axis)
    x_direction, y_direction = volume.direction[:, x_axis], volume.direction[:, y_axis]
    # Screen right should point to LPS +x (left) for axial/coronal, +y (posterior) for sagittal.
    right = 1 if axis is Axis.SAGITTAL else 0
    # Screen down should point to +y (posterior) for axial, -z (inferior) otherwise.
    down, down_sign = (1, 1.0) if axis is Axis.AXIAL else (2, -1.0)
    return bool(down_sign * y_direction[down] < 0), bool(x_direction[right] < 0)


def write_overlay_png(
    path: Path,
    image01: np.ndarray,
    masks: Sequence[np.ndarray],
    prompts: Prompts | None = None,
    flips: tuple[bool, bool] = (False, False),
    scale: int = 3,
    outputs: OutputSet | None = None,
) -> Path:
    """Draw the mask outlines (and prompts) on the slice; ``flips`` orient it for display.

    With ``outputs`` the PNG is renamed into place with the rest of that set.
    """
    from PIL import Image, ImageDraw

    grey = (np.clip(image01, 0, 1) * 255).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    for number, mask in enumerate(masks):
        outline = mask & ~ndimage.binary_erosion(mask)
        rgb[outline] = np.array(SEGMENT_COLOURS[number % len(SEGMENT_COLOURS)]) * 255
    height, width = grey.shape
    rgb = rgb[:: -1 if flips[0] else 1, :: -1 if flips[1] else 1]
    picture = Image.fromarray(np.ascontiguousarray(rgb)).resize(
        (width * scale, height * scale), Image.Resampling.NEAREST
    )

    def on_screen(x: float, y: float) -> tuple[float, float]:
        x = width - 1 - x if flips[1] else x
        y = height - 1 - y if flips[0] else y
        return x * scale + scale // 2, y * scale + scale // 2

    if prompts is not None:
        draw = ImageDraw.Draw(picture)
        box = prompts.box_array()
        if box is not None:
            (ax, ay), (bx, by) = on_screen(box[0], box[1]), on_screen(box[2], box[3])
            draw.rectangle([min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)], outline=_BOX_RGB)
        for (x, y), label in zip(prompts.points, prompts.labels):
            colour = _POSITIVE_RGB if label == POSITIVE else _NEGATIVE_RGB
            cx, cy = on_screen(x, y)
            draw.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], fill=colour)
    # PIL writes through a Python file object, which raises on a full disk: no read-back needed.
    return write_file(path, lambda temporary: picture.save(temporary, format="PNG"), outputs=outputs)
