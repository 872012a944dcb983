import numpy as np
import pytest
from PIL import Image

from SAMSegmentLib.cli.overlay import display_flips, write_overlay_png
from SAMSegmentLib.prompts import Prompts
from SAMSegmentLib.volume import Axis, Volume


def volume_with(direction):
    return Volume(np.arange(60, dtype=np.int16).reshape(3, 4, 5), direction=np.diag(direction))


@pytest.mark.parametrize(
    "direction, axis, expected",
    [
        ((1, 1, 1), Axis.AXIAL, (False, False)),  # LPS-aligned: i to the left, j to posterior
        ((-1, -1, 1), Axis.AXIAL, (True, True)),  # a typical NIfTI-from-RAS file
        ((1, 1, 1), Axis.CORONAL, (True, False)),  # k goes up (superior): rows must be flipped
        ((1, 1, -1), Axis.SAGITTAL, (False, False)),
        ((1, -1, 1), Axis.SAGITTAL, (True, True)),
    ],
)
def test_slices_are_shown_in_radiological_orientation(direction, axis, expected):
    assert display_flips(volume_with(direction), axis) == expected


def test_flipped_overlay_moves_outline_and_prompts_together(tmp_path):
    image = np.zeros((10, 20))
    mask = np.zeros((10, 20), bool)
    mask[1:4, 1:5] = True  # top-left in array order
    prompts = Prompts(box=(1, 1, 4, 3))
    path = tmp_path / "overlay.png"
    write_overlay_png(path, image, [mask], prompts, flips=(True, True), scale=1)
    pixels = np.asarray(Image.open(path).convert("RGB"))
    coloured = np.argwhere(pixels.any(axis=2))
    assert pixels.shape[:2] == (10, 20)
    # Everything drawn sits in the bottom-right after both flips.
    assert coloured[:, 0].min() >= 5 and coloured[:, 1].min() >= 14
