"""Models with a real encoder's latency or a device's memory limit, and worker set-up shared by
the worker tests. No tests here."""

from __future__ import annotations

import threading
import time

import numpy as np
import torch

from SAMSegmentLib.models import ImageEmbedding, PromptableModel
from SAMSegmentLib.prompts import Prompts
from SAMSegmentLib.propagation import StopRule
from SAMSegmentLib.volume import Axis, Volume
from SAMSegmentLib.worker import (
    InferenceWorker,
    LoadModel,
    MessageKind,
    Request,
    SetVolume,
    WorkerMessage,
    WorkerSettings,
)

# Random-weight models score low and drift; this rule lets propagation run to the range ends.
KEEP_GOING = StopRule(
    min_score=-1.0, min_area_fraction=0.0, min_overlap=0.0, max_intensity_shift=float("inf"), absent_score=-1.0
)


class SlowEncoder:
    """``model`` with an encoder ``seconds`` slower, as a real one is; records when each call ran."""

    def __init__(self, model: PromptableModel, seconds: float) -> None:
        self.wrapped = model
        self.seconds = seconds
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.started = threading.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self.wrapped, name)

    def encode(self, image01: np.ndarray) -> ImageEmbedding:
        self.starts.append(time.monotonic())
        self.started.set()
        time.sleep(self.seconds)
        try:
            return self.wrapped.encode(image01)
        finally:
            self.ends.append(time.monotonic())


class OutOfMemoryEncoder:
    """``model`` on a device too small for its encoder."""

    def __init__(self, model: PromptableModel) -> None:
        self.wrapped = model

    def __getattr__(self, name: str) -> object:
        return getattr(self.wrapped, name)

    def encode(self, image01: np.ndarray) -> ImageEmbedding:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def organ_box(volume: Volume, axis: Axis = Axis.AXIAL) -> Prompts:
    """A box around the middle of the slice, where make_ct_phantom puts its organ."""
    height, width = volume.slice_shape(axis)
    return Prompts(box=(width * 0.3, height * 0.3, width * 0.7, height * 0.7))


def answer_to(worker: InferenceWorker, request: Request, timeout: float = 60) -> WorkerMessage:
    """The final message of ``request``, waiting for it."""
    return worker.wait(worker.submit(request), timeout=timeout)[-1]


def ready_worker(model: object, volume: Volume, **settings: object) -> InferenceWorker:
    """A worker that has loaded ``model`` and ``volume``."""
    worker = InferenceWorker(WorkerSettings(**settings), loader=lambda request: model)  # type: ignore[arg-type]
    worker.submit(LoadModel("sam_vit_b", device="cpu"))
    last = answer_to(worker, SetVolume(volume, volume_key="phantom"))
    assert last.kind is MessageKind.RESULT, last
    return worker
