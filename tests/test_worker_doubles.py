"""Models with a real encoder's latency or a device's memory limit, and worker set-up shared by
the worker tests. No tests here."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from SAMSegmentLib.cancel import CancelToken
from SAMSegmentLib.errors import CancelledError
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
KEEP_GOING = StopRule.keep_going()


class SlowEncoder:
    """``model`` with an encoder ``seconds`` slower, as a real one is; records when each call ran.

    Inside ``interruptible`` (background embedding) the extra time is ``background_seconds``
    (default: ``seconds``) and stops early when cancelled, as a real encoder does;
    ``interrupted`` counts those calls.
    """

    def __init__(self, model: PromptableModel, seconds: float, background_seconds: float | None = None) -> None:
        self.wrapped = model
        self.seconds = seconds
        self.background_seconds = seconds if background_seconds is None else background_seconds
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.started = threading.Event()
        self.interrupted = 0
        self._cancel: CancelToken | None = None

    def __getattr__(self, name: str) -> object:
        return getattr(self.wrapped, name)

    @contextmanager
    def interruptible(self, cancel: CancelToken) -> Iterator[None]:
        self._cancel = cancel
        try:
            with self.wrapped.interruptible(cancel):
                yield
        finally:
            self._cancel = None

    def encode(self, image01: np.ndarray) -> ImageEmbedding:
        self.starts.append(time.monotonic())
        self.started.set()
        try:
            self._work()
            return self.wrapped.encode(image01)
        finally:
            self.ends.append(time.monotonic())

    def _work(self) -> None:
        if self._cancel is None:
            time.sleep(self.seconds)
            return
        stopped = threading.Event()
        with self._cancel.stopping_with(stopped.set):
            if stopped.wait(self.background_seconds):
                self.interrupted += 1
                raise CancelledError("interrupted")


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
