"""Clicks made while the worker embeds neighbouring slices in the background, as happens when
a user prompts again a moment after the first mask appeared."""

from __future__ import annotations

import time

import numpy as np

from ..intensity import IntensityMapping
from ..models import PromptableModel
from ..prompts import Prompts
from ..worker import InferenceWorker, LoadModel, Predict, SetVolume, WorkerSettings
from .cases import BenchCase
from .propagation import worker_result


def clicks_during_prefetch_seconds(
    model: PromptableModel,
    case: BenchCase,
    intensity: IntensityMapping,
    count: int,
    encoder_s: float,
    settings: WorkerSettings,
    seed: int = 0,
) -> list[float]:
    """Seconds from submitting a box on the embedded seed slice to the worker's answer, each
    click after a pause of 0.25 to 1.25 encoder calls, so it lands anywhere in the background
    embedding of a neighbour (which every click restarts)."""
    rng = np.random.default_rng(seed)
    prompts = Prompts(box=case.box)
    seconds = []
    with InferenceWorker(settings, loader=lambda _request: model) as worker:
        worker_result(worker, LoadModel(model.spec.name, str(model.device)))
        worker_result(worker, SetVolume(case.volume, intensity, volume_key="bench-prefetch"))
        worker_result(worker, Predict(case.axis, case.seed_index, prompts))  # embeds the seed; prefetch starts
        for _ in range(count):
            time.sleep(rng.uniform(0.25, 1.25) * encoder_s)
            started = time.perf_counter()
            worker_result(worker, Predict(case.axis, case.seed_index, prompts))
            seconds.append(time.perf_counter() - started)
    return seconds
