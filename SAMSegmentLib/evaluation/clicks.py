"""Simulated clicks: each at the point farthest from the boundary of the region to fix."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:
    from ..predictor import Prediction, VolumePredictor
    from ..prompts import Prompts
    from ..volume import Axis


def interior_point(region: np.ndarray) -> tuple[float, float]:
    """(x, y) of the pixel of ``region`` farthest from its boundary."""
    # Pad so that pixels on the image border count as next to the boundary.
    distance = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(distance)), region.shape)
    return float(x), float(y)


def next_click(prediction: np.ndarray, reference: np.ndarray) -> tuple[float, float, bool] | None:
    """The next corrective click: inside the largest error region, positive where the model missed
    the structure and negative where it added to it. None when the prediction is perfect."""
    missed = reference & ~prediction
    extra = prediction & ~reference
    best: tuple[int, np.ndarray, bool] | None = None
    for errors, positive in ((missed, True), (extra, False)):
        labels, count = ndimage.label(errors)
        if count == 0:
            continue
        sizes = ndimage.sum_labels(errors, labels, index=range(1, count + 1))
        largest = int(np.argmax(sizes))
        if best is None or sizes[largest] > best[0]:
            best = (int(sizes[largest]), labels == largest + 1, positive)
    if best is None:
        return None
    x, y = interior_point(best[1])
    return x, y, best[2]


def correct_with_clicks(
    predictor: VolumePredictor, axis: Axis, index: int, prompts: Prompts, reference_slice: np.ndarray, clicks: int
) -> Prediction:
    """Segment from ``prompts``, then add up to ``clicks`` corrective clicks (``next_click``), each
    decoded with the previous mask as mask prompt. ``prompts`` gains the clicks."""
    prediction = predictor.predict(axis, index, prompts)
    for _ in range(clicks):
        click = next_click(prediction.mask, reference_slice)
        if click is None:
            break
        prompts.add_point(click[0], click[1], positive=click[2])
        prediction = predictor.predict(axis, index, prompts, mask_logits=prediction.low_res_logits)
    return prediction
