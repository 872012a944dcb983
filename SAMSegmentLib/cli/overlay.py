"""A PNG of a slice with mask outlines and prompts, for a quick look without Slicer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..imageio import SEGMENT_COLOURS
from ..prompts import POSITIVE, Prompts

_POSITIVE_RGB = (0, 255, 0)
_NEGATIVE_RGB = (255, 0, 0)
_BOX_RGB = (255, 255, 0)


def write_overlay_png(
    path: Path, image01: np.ndarray, masks: Sequence[np.ndarray], prompts: Prompts | None = None, scale: int = 3
) -> None:
    from PIL import Image, ImageDraw

    grey = (np.clip(image01, 0, 1) * 255).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    for number, mask in enumerate(masks):
        outline = mask & ~ndimage.binary_erosion(mask)
        rgb[outline] = np.array(SEGMENT_COLOURS[number % len(SEGMENT_COLOURS)]) * 255
    picture = Image.fromarray(rgb).resize((rgb.shape[1] * scale, rgb.shape[0] * scale), Image.NEAREST)
    if prompts is not None:
        draw = ImageDraw.Draw(picture)
        box = prompts.box_array()
        if box is not None:
            draw.rectangle([v * scale + scale // 2 for v in box], outline=_BOX_RGB)
        for (x, y), label in zip(prompts.points, prompts.labels):
            colour = _POSITIVE_RGB if label == POSITIVE else _NEGATIVE_RGB
            cx, cy = x * scale + scale // 2, y * scale + scale // 2
            draw.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], fill=colour)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
