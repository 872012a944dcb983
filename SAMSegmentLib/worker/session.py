"""The worker thread's state: the loaded model, the current volume and the embedding cache
(or, with a SAM 2 family model, its sessions on the volume).

Only the worker thread touches an InferenceSession, so it needs no locks of its own.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..backends import open_backend
from ..backends.export import default_graph_root
from ..cache import DEFAULT_BUDGET_BYTES, EmbeddingCache
from ..cancel import CancelToken, Progress
from ..checkpoints import CheckpointStore
from ..device import select_device
from ..errors import SAMSegmentError
from ..models import ImageEmbedding, PromptableModel, load_model
from ..predictor import VolumePredictor
from ..prompts import Prompts
from ..propagation import PropagationResult, SliceResult
from ..propagation.factory import make_propagator
from ..propagation.sam2 import load_sam2_predictor
from ..protocol.messages import ModelReady, Preview, VolumeReady
from ..protocol.requests import Download, LoadModel, Predict, Propagate, SetVolume
from ..registry import Family, get_spec
from ..volume import Axis
from .prefetch import Prefetch
from .sam2_sessions import SAM2Model, SAM2Sessions, parse_memory_policy

# Builds the model of a LoadModel: a PromptableModel, or a SAM2Model for the SAM 2 family.
ModelLoader = Callable[[LoadModel], PromptableModel | SAM2Model]


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
        self.model: PromptableModel | SAM2Model | None = None
        self.predictor: VolumePredictor | None = None  # image models
        self.sam2: SAM2Sessions | None = None  # SAM 2 family models
        self._volume: SetVolume | None = None

    def _load_registered(self, request: LoadModel) -> PromptableModel | SAM2Model:
        try:
            device = select_device(request.device)
        except ValueError as error:
            raise SAMSegmentError(str(error)) from error
        spec = get_spec(request.model)
        if spec.family is Family.SAM2:
            return SAM2Model(spec, load_sam2_predictor(spec, device, self.store, request.checkpoint))
        model = load_model(spec, device, self.store, request.checkpoint)
        return open_backend(model, request.backend, graph_root=default_graph_root(self.store))

    def fresh_model(self, request: LoadModel) -> PromptableModel | SAM2Model:
        """A new instance of the request's model that the session does not keep (fine-tuning changes it)."""
        return self._loader(request)

    def load_model(self, request: LoadModel) -> ModelReady:
        model = self._loader(request)
        self.model = model
        self._start_predictor()
        return ModelReady(model.spec, str(model.device))

    def set_volume(self, request: SetVolume) -> VolumeReady:
        policy = parse_memory_policy(request.memory_policy)  # before anything changes
        # A fixed key lets a later LoadModel re-create the predictor and reuse this volume's embeddings.
        key = request.volume_key or uuid.uuid4().hex
        self._volume = dataclasses.replace(request, volume_key=key, memory_policy=policy)
        self._start_predictor()
        return VolumeReady(key)

    def _start_predictor(self) -> None:
        self.predictor = self.sam2 = None
        if self.model is None or self._volume is None:
            return
        volume = self._volume
        if isinstance(self.model, SAM2Model):
            policy = parse_memory_policy(volume.memory_policy)  # already parsed by set_volume: the enum
            self.sam2 = SAM2Sessions(self.model, volume.volume, volume.intensity, policy)
            return
        predictor = VolumePredictor(self.model, self.cache)
        predictor.set_volume(volume.volume, volume.intensity, volume.volume_key)
        self.predictor = predictor

    def _require_segmenter(self) -> VolumePredictor | SAM2Sessions:
        segmenter = self.sam2 if self.sam2 is not None else self.predictor
        if segmenter is None:
            missing = "model" if self.model is None else "volume"
            raise SAMSegmentError(f"No {missing} is loaded yet: choose a {missing} before segmenting.")
        return segmenter

    def predict(self, request: Predict) -> Preview:
        segmenter = self._require_segmenter()
        if isinstance(segmenter, SAM2Sessions):
            return Preview(Axis(request.axis), request.index, segmenter.preview(request))
        logits = None if request.mask_logits is None else torch.as_tensor(request.mask_logits, dtype=torch.float32)
        segmenter.choose_intensity(request.axis, request.index, request.prompts)  # as the propagation from them will
        prediction = segmenter.predict(
            request.axis, request.index, request.prompts, mask_logits=logits, multimask=request.multimask
        )
        if not request.logits:
            prediction = dataclasses.replace(prediction, low_res_logits=None)
        return Preview(Axis(request.axis), request.index, prediction)

    def propagate(
        self, request: Propagate, cancel: CancelToken, on_slice: Callable[[SliceResult], None], progress: Progress
    ) -> PropagationResult:
        segmenter = self._require_segmenter()
        if isinstance(segmenter, SAM2Sessions):
            propagator = segmenter.propagator(request, cancel, progress)
        else:
            propagator = make_propagator(segmenter, request.request, request.stop_rule, cancel, progress)
        for result in propagator:
            on_slice(result)
        return propagator.result

    def download(self, request: Download, cancel: CancelToken, progress: Progress) -> Path:
        last_percent = -1

        def report_whole_percents(done: int, total: int, stage: str = "") -> None:
            # The store reports every megabyte: thousands of messages for a large model.
            nonlocal last_percent
            percent = done * 100 // max(1, total)
            if percent != last_percent:
                last_percent = percent
                progress(done, total, stage)

        return self.store.download(get_spec(request.model), progress=report_whole_percents, cancel=cancel)

    def prefetch(self, axis: Axis, index: int, prompts: Prompts | None = None) -> Prefetch | None:
        """A plan embedding slice ``index`` and its neighbours (for a model that zooms to the prompt,
        their windows around ``prompts`` too), or None when there is nothing to do (also with SAM 2
        models: see ``sam2_sessions``)."""
        if self.predictor is None or self.settings.prefetch_slices <= 0:
            return None
        return Prefetch(self.predictor, Axis(axis), index, self.settings.prefetch_slices, prompts)
