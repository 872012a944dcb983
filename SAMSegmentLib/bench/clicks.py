"""Interactive latency: a click on a slice already embedded, and the first click on a fresh one."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np

from ..predictor import VolumePredictor
from ..prompts import Prompts
from ..registry import PromptKind
from ..volume import Axis
from .cases import Box
from .timing import timed

_JITTER_PIXELS = 4


def jittered_prompts(
    box: Box, slice_hw: tuple[int, int], takes_points: bool, count: int, seed: int = 0
) -> list[Prompts]:
    """Prompts a user would give the same object: the box a few pixels off each time and, for
    models that take points, one to three clicks inside it (so the multimask path is timed too)."""
    rng = np.random.default_rng(seed)
    height, width = slice_hw
    limits = np.array([width - 1, height - 1, width - 1, height - 1], dtype=float)
    prompts_list = []
    for index in range(count):
        x0, y0, x1, y1 = np.clip(np.asarray(box) + rng.integers(-_JITTER_PIXELS, _JITTER_PIXELS + 1, 4), 0, limits)
        prompts = Prompts(box=(float(x0), float(y0), float(x1), float(y1)))
        if takes_points:
            if index % 2:  # every other click: points only, as a user refining with clicks
                prompts.box = None
            for _ in range(1 + index % 3):
                prompts.add_point(
                    float(rng.uniform(x0 + (x1 - x0) / 3, x1 - (x1 - x0) / 3)),
                    float(rng.uniform(y0 + (y1 - y0) / 3, y1 - (y1 - y0) / 3)),
                )
        prompts_list.append(prompts)
    return prompts_list


def click_seconds(
    predictors: Mapping[str, VolumePredictor], axis: Axis, index: int, prompts_list: Sequence[Prompts]
) -> dict[str, list[float]]:
    """Seconds per click from prompts to a full-resolution boolean mask, the slice embedded
    beforehand (each prompt's window of it, for a model that zooms to the prompt), for each
    predictor; interleaved click by click so load changes hit all alike."""
    for predictor in predictors.values():
        predictor.embed_for(axis, index, prompts_list)
        predictor.predict(axis, index, prompts_list[0])  # warm-up: the first decoder run allocates
    seconds: dict[str, list[float]] = {name: [] for name in predictors}
    for prompts in prompts_list:
        for name, predictor in predictors.items():
            elapsed, _ = timed(functools.partial(predictor.predict, axis, index, prompts), predictor.model.device)
            seconds[name].append(elapsed)
    return seconds


def first_mask_seconds(predictor: VolumePredictor, axis: Axis, indices: Sequence[int], box: Box) -> list[float]:
    """Seconds from a box on a slice never embedded to its mask (encoder, decoder, upsampling)."""
    seconds = []
    for index in indices:
        prompts = Prompts(box=box)
        if any(predictor.is_embedded(axis, index, view) for view in predictor.views(axis, prompts)):
            raise ValueError(f"Slice {index} is already embedded; first-mask timing needs fresh slices.")
        seconds.append(timed(functools.partial(predictor.predict, axis, index, prompts), predictor.model.device)[0])
    return seconds


def takes_points(predictor: VolumePredictor) -> bool:
    return predictor.model.spec.accepts(PromptKind.POINT)
