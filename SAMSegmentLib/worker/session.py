"""The worker thread's state: the loaded model, the current volume and the embedding cache.

Only the worker thread touches an InferenceSession, so it needs no locks of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ..cache import DEFAULT_BUDGET_BYTES, EmbeddingCache
from ..checkpoints import CheckpointStore
from ..device import select_device
from ..errors import SAMSegmentError
from ..models import ImageEmbedding, PromptableModel, load_model
from ..predictor import VolumePredictor
from ..propagation import CancelToken, PropagationResult, SliceResult
from ..registry import get_spec
from ..volume import Axis
from .messages import ModelReady, Preview, VolumeReady
from .prefetch import prefetch_steps
from .propagators import make_propagator
from .requests import Download, LoadModel, Predict, Propagate, SetVolume

ModelLoader = Callable[[LoadModel], PromptableModel]
Progress = Callable[[int, int], None]


@dataclass
class WorkerSettings:
    cache_budget_bytes: int = DEFAULT_BUDGET_BYTES  # shared by every volume and model
    # Neighbours of the last prompted slice embedded in the background; 0 turns prefetch off.
    prefetch_slices: int = 16
    checkpoint_dir: Path | None = None  # None: the checkpoint store's default folder


class InferenceSession:
    def __init__(self, settings: WorkerSettings, loader: ModelLoader | None = None) -> None:
        self.settings = settings
        self.cache: EmbeddingCache[ImageEmbedding] = EmbeddingCache(settings.cache_budget_bytes)
        self.store = CheckpointStore(settings.checkpoint_dir)
        self._loader = loader or self._load_registered
        self.model: PromptableModel | None = None
        self.predictor: VolumePredictor | None = None
        self._volume: SetVolume | None = None

    def _load_registered(self, request: LoadModel) -> PromptableModel:
        try:
            device = select_device(request.device)
        except ValueError as error:
            raise SAMSegmentError(str(error)) from error
        return load_model(get_spec(request.model), device, self.store, request.checkpoint)

    def load_model(self, request: LoadModel) -> ModelReady:
        model = self._loader(request)
        self.model = model
        self._start_predictor()
        return ModelReady(model.spec, str(model.device))

    def set_volume(self, request: SetVolume) -> VolumeReady:
        # A fixed key lets a later LoadModel re-create the predictor and reuse this volume's embeddings.
        key = request.volume_key or uuid.uuid4().hex
        self._volume = SetVolume(request.volume, request.preset, key, request.focus)
        self._start_predictor()
        return VolumeReady(key)

    def _start_predictor(self) -> None:
        if self.model is None or self._volume is None:
            self.predictor = None
            return
        predictor = VolumePredictor(self.model, self.cache)
        predictor.set_volume(self._volume.volume, self._volume.preset, self._volume.volume_key)
        self.predictor = predictor

    def _require_predictor(self) -> VolumePredictor:
        if self.predictor is None:
            missing = "model" if self.model is None else "volume"
            raise SAMSegmentError(f"No {missing} is loaded yet: choose a {missing} before segmenting.")
        return self.predictor

    def predict(self, request: Predict) -> Preview:
        logits = None if request.mask_logits is None else torch.as_tensor(request.mask_logits, dtype=torch.float32)
        prediction = self._require_predictor().predict(
            request.axis, request.index, request.prompts, mask_logits=logits, multimask=request.multimask
        )
        return Preview(Axis(request.axis), request.index, prediction)

    def propagate(
        self, request: Propagate, cancel: CancelToken, on_slice: Callable[[SliceResult], None], progress: Progress
    ) -> PropagationResult:
        propagator = make_propagator(self._require_predictor(), request.request, request.stop_rule, cancel, progress)
        for result in propagator:
            on_slice(result)
        return propagator.result

    def download(self, request: Download, cancel: CancelToken, progress: Progress) -> Path:
        last_percent = -1

        def report_whole_percents(done: int, total: int) -> None:
            # The store reports every megabyte: thousands of messages for a large model.
            nonlocal last_percent
            percent = done * 100 // max(1, total)
            if percent != last_percent:
                last_percent = percent
                progress(done, total)

        return self.store.download(
            get_spec(request.model), progress=report_whole_percents, cancel=lambda: cancel.cancelled
        )

    def prefetch(self, axis: Axis, index: int) -> Iterator[int] | None:
        """Steps embedding the neighbours of slice ``index``, or None when there is nothing to do."""
        if self.predictor is None or self.settings.prefetch_slices <= 0:
            return None
        return prefetch_steps(self.predictor, Axis(axis), index, self.settings.prefetch_slices)
