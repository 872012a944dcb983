"""Propagation speed: our engine (worker thread, best backend, prefetch) against a plain loop."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..cache import EmbeddingCache
from ..intensity import IntensityMapping
from ..metrics import dice
from ..models import PromptableModel
from ..predictor import VolumePredictor
from ..prompts import Prompts
from ..propagation import ObjectPrompts, PropagationRequest, PropagationResult, SliceResult, StopRule
from ..worker import (
    InferenceWorker,
    LoadModel,
    MessageKind,
    Predict,
    Propagate,
    SetVolume,
    WorkerMessage,
    WorkerSettings,
)
from .cases import BenchCase, Box, mask_box
from .stall import StallReport, measure_main_thread_stall

OBJECT_ID = "organ"
_MIN_BOX_PIXELS = 1  # Prompts.validate refuses boxes narrower than this
# For random weights (timing only): carry whatever mask the model makes through every slice,
# and never judge the prompted slice absent (that needs the score below absent_score).
TIMING_ONLY_STOP_RULE = StopRule.keep_going()


@dataclass
class EngineRun:
    seconds: float  # from submitting the seed's box to the propagation's last message
    order: list[int]  # slices in the order they were segmented, the seed first
    stall: StallReport  # of the main thread while the worker propagated
    result: PropagationResult
    cache_bytes: int  # embeddings the worker's cache held at the end


def slice_range(case: BenchCase, count: int) -> tuple[int, int]:
    """``count`` slices around the seed, shifted inward at the volume's ends."""
    total = case.volume.slice_count(case.axis)
    first = max(0, min(case.seed_index - count // 2, total - count))
    return first, min(total - 1, first + count - 1)


def engine_propagation(
    model: PromptableModel,
    case: BenchCase,
    intensity: IntensityMapping,
    slices: tuple[int, int],
    stop_rule: StopRule,
    settings: WorkerSettings,
) -> EngineRun:
    """Prompt the seed, then propagate, as the Slicer effect does: through the inference worker,
    with the main thread polling it from a 50 ms timer."""
    order: list[int] = []
    final: list[WorkerMessage] = []

    def apply(message: WorkerMessage) -> None:
        if message.kind is MessageKind.SLICE:
            result: SliceResult = message.value  # type: ignore[assignment]
            order.append(result.index)
        elif message.kind.final:
            final.append(message)

    request = PropagationRequest(
        case.axis, case.seed_index, [ObjectPrompts(OBJECT_ID, Prompts(box=case.box))], slice_range=slices
    )
    with InferenceWorker(settings, loader=lambda _request: model) as worker:
        worker_result(worker, LoadModel(model.spec.name, str(model.device)))
        worker_result(worker, SetVolume(case.volume, intensity, volume_key="bench"))
        started = time.perf_counter()
        worker_result(worker, Predict(case.axis, case.seed_index, Prompts(box=case.box)))
        stall = measure_main_thread_stall(worker, Propagate(request, stop_rule), apply)
        seconds = time.perf_counter() - started
        cache_bytes = worker.cache.nbytes
    if final[-1].kind is not MessageKind.RESULT:
        raise RuntimeError(f"The propagation ended {final[-1].kind.value}: {final[-1].text}")
    return EngineRun(seconds, order, stall, final[-1].value, cache_bytes)  # type: ignore[arg-type]


def plain_loop(
    model: PromptableModel, case: BenchCase, intensity: IntensityMapping, order: list[int]
) -> tuple[float, dict[int, np.ndarray]]:
    """The baseline: for each slice in ``order``, embed it (no cache, nothing ahead of time) and
    prompt it with the box of its neighbour's mask towards the seed. Returns (seconds, masks)."""
    predictor = VolumePredictor(model, EmbeddingCache(budget_bytes=0))
    predictor.set_volume(case.volume, intensity)
    masks: dict[int, np.ndarray] = {}
    boxes: dict[int, Box] = {case.seed_index: case.box}
    started = time.perf_counter()
    for index in order:
        towards_seed = index - 1 if index > case.seed_index else index + 1
        box = boxes[case.seed_index if index == case.seed_index else towards_seed]
        masks[index] = predictor.predict(case.axis, index, Prompts(box=box)).mask
        boxes[index] = _next_box(masks[index], box)
    return time.perf_counter() - started, masks


def mean_dice(result: PropagationResult, case: BenchCase, masks: dict[int, np.ndarray]) -> float:
    """How alike the engine's and the plain loop's masks are (a check that both did the same job)."""
    mask3d = result.objects[OBJECT_ID].mask
    axis = case.axis.array_axis
    return float(np.mean([dice(np.take(mask3d, index, axis=axis), mask) for index, mask in masks.items()]))


def _next_box(mask: np.ndarray, previous: Box) -> Box:
    """The box of ``mask``, or ``previous`` when the mask is empty or thinner than a box may be."""
    if not mask.any():
        return previous
    box = mask_box(mask)
    return box if box[2] - box[0] >= _MIN_BOX_PIXELS and box[3] - box[1] >= _MIN_BOX_PIXELS else previous


def worker_result(worker: InferenceWorker, request: object) -> object:
    message = worker.wait(worker.submit(request))[-1]  # type: ignore[arg-type]
    if message.kind is not MessageKind.RESULT:
        raise RuntimeError(f"The worker answered {message.kind.value}: {message.text}")
    return message.value
