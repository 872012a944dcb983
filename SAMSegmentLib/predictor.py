"""An interactive segmentation session on one volume: embed slices, decode prompts into masks."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import torch

from .cache import EmbeddingCache, content_fingerprint
from .candidate_choice import candidate_qualities, choose_candidate
from .errors import CheckpointError, InferenceOutOfMemoryError, PromptError
from .intensity import (
    AUTO_PRESET,
    BONE_WINDOW_MIN_QUALITY_GAIN,
    IntensityMapping,
    auto_started_on_ct,
    ct_auto_presets,
    mapping_for,
    prompted_values,
    widened_to_prompt,
)
from .models.base import Decoded, ImageEmbedding, PromptableModel
from .prediction import Prediction
from .prompts import Prompts
from .registry import PromptKind
from .slice_window import SliceWindow, prompt_window
from .volume import Axis, Volume


class VolumePredictor:
    """Segment slices of one volume with one model.

    The intensity mapping is one for the whole volume, so every slice is scaled alike. With ``auto``
    it adapts to the prompted structure: ``choose_intensity`` decides it from the prompt that starts
    a segmentation (a propagation decides at its seed and keeps it to the end).
    Embeddings are kept in a byte-bounded cache keyed by (volume key, content, intensity mapping,
    model, axis, index, window): a model that zooms to the prompt (``ModelSpec.zoom_context``)
    also embeds the window of the slice around them.
    """

    def __init__(self, model: PromptableModel, cache: EmbeddingCache[ImageEmbedding] | None = None) -> None:
        self.model = model
        self.cache: EmbeddingCache[ImageEmbedding] = cache if cache is not None else EmbeddingCache()
        self.volume: Volume | None = None
        self.mapping: IntensityMapping | None = None
        # ``auto``: the mapping before any prompt (None: a fixed setting), and on a CT the mappings
        # choose_intensity picks from, by preset, filled when first chosen.
        self._auto_start: IntensityMapping | None = None
        self._auto_mappings: dict[str, IntensityMapping] | None = None
        self.volume_key = ""
        self.content = ""  # content_fingerprint of the volume
        self.embed_count = 0

    def set_volume(
        self, volume: Volume, intensity: IntensityMapping | str = AUTO_PRESET, volume_key: str | None = None
    ) -> None:
        """Start a session on ``volume``. ``volume_key`` identifies its content for the cache (a new key
        is made if omitted). Embeddings are reused only for the same key *and* the same voxels, so a key
        reused for an edited volume or another grid never serves a stale embedding."""
        self.volume = volume
        self.mapping = intensity if isinstance(intensity, IntensityMapping) else mapping_for(volume, intensity)
        self._auto_start = self.mapping if intensity == AUTO_PRESET else None
        ct = self._auto_start is not None and auto_started_on_ct(self._auto_start)
        self._auto_mappings = {self.mapping.preset: self.mapping} if ct else None
        self.volume_key = volume_key or uuid.uuid4().hex
        self.content = content_fingerprint(volume.array)

    def require_volume(self) -> Volume:
        if self.volume is None:
            raise RuntimeError("No volume is set: call set_volume() first.")
        return self.volume

    def require_mapping(self) -> IntensityMapping:
        """The intensity mapping in force: set by set_volume, changed by choose_intensity."""
        if self.mapping is None:
            raise RuntimeError("No volume is set: call set_volume() first.")
        return self.mapping

    def choose_intensity(self, axis: Axis, index: int, prompts: Prompts) -> IntensityMapping:
        """With ``auto``, decide the mapping from the voxels under ``prompts`` on slice ``index``. On a CT
        (see ``intensity.ct_auto_presets``), where that leaves two windows, the slice is segmented with
        each and the second is kept only if the model's predicted quality is higher by
        ``BONE_WINDOW_MIN_QUALITY_GAIN`` (one more encoder call, the first time). On other images the
        volume's percentiles, widened to the prompt where they clip it (``intensity.widened_to_prompt``).
        Other settings keep theirs. Returns the mapping in force."""
        volume = self.require_volume()
        if self._auto_start is None:
            return self.require_mapping()
        axis = Axis(axis)
        values = prompted_values(volume.slice_2d(axis, index), prompts, volume.slice_spacing(axis))
        if self._auto_mappings is None:
            self.mapping = widened_to_prompt(self._auto_start, values)
            return self.mapping
        first, *others = (self._auto_mapping(preset) for preset in ct_auto_presets(values))
        self.mapping = first
        if others:
            self.mapping = self._better_scored(axis, index, prompts, first, others)
        return self.mapping

    def _auto_mapping(self, preset: str) -> IntensityMapping:
        assert self._auto_mappings is not None
        if preset not in self._auto_mappings:
            self._auto_mappings[preset] = mapping_for(self.require_volume(), preset)
        return self._auto_mappings[preset]

    def _better_scored(
        self, axis: Axis, index: int, prompts: Prompts, first: IntensityMapping, others: list[IntensityMapping]
    ) -> IntensityMapping:
        """Of ``first`` and ``others``, the mapping under which the model segments ``prompts`` best,
        ``first`` unless another is better by ``BONE_WINDOW_MIN_QUALITY_GAIN``."""
        try:
            prompts.validate(self.require_volume().slice_shape(axis), self.model.spec)
        except PromptError:
            return first  # predict will say what is wrong with the prompts
        scores = {}
        for mapping in (first, *others):
            self.mapping = mapping
            scores[mapping] = self.predict(axis, index, prompts).score
        best = max(others, key=scores.__getitem__)
        return best if scores[best] >= scores[first] + BONE_WINDOW_MIN_QUALITY_GAIN else first

    def slice_image(self, axis: Axis, index: int) -> np.ndarray:
        """The slice mapped to [0, 1] with the volume's intensity mapping."""
        return self.require_mapping().apply(self.require_volume().slice_2d(axis, index))

    def cache_key(
        self, axis: Axis, index: int, window: SliceWindow | None = None
    ) -> tuple[str, str, str, str, str, int, SliceWindow | None]:
        return (
            self.volume_key,
            self.content,
            repr(self.require_mapping()),
            self.model.spec.name,
            Axis(axis).value,
            int(index),
            window,
        )

    def is_embedded(self, axis: Axis, index: int, window: SliceWindow | None = None) -> bool:
        return self.cache_key(axis, index, window) in self.cache

    def views(self, axis: Axis, prompts: Prompts | None = None) -> list[SliceWindow | None]:
        """What the model sees of a slice along ``axis`` for ``prompts``: the whole slice (None), and
        for a model that zooms to the prompt (``ModelSpec.zoom_context``) on a slice larger than its
        input, first the window around them (see ``slice_window``)."""
        spec = self.model.spec
        if not spec.zoom_context or prompts is None:
            return [None]
        window = prompt_window(
            prompts, self.require_volume().slice_shape(axis), self.model.input_size, spec.zoom_context
        )
        return [None] if window is None else [window, None]

    def embed_for(self, axis: Axis, index: int, prompts: Iterable[Prompts]) -> None:
        """Embed every view of slice ``index`` that ``prompts`` need, each once."""
        for window in dict.fromkeys(view for each in prompts for view in self.views(axis, each)):
            self.embed(axis, index, window)

    def embed(self, axis: Axis, index: int, window: SliceWindow | None = None) -> ImageEmbedding:
        """The embedding of the slice (or of its ``window``), computed once and then served from the cache."""
        axis = Axis(axis)
        self.require_volume()
        key = self.cache_key(axis, index, window)
        embedding = self.cache.get(key)
        if embedding is None:
            image = self.slice_image(axis, index)
            if window is not None:
                image = window.crop(image)
            with _out_of_memory_as_error(self.model.device):
                embedding = self.model.encode(image)
            self._require_finite("image embedding", *embedding.features.values())  # before it is cached
            self.embed_count += 1
            self.cache.put(key, embedding)
        return embedding

    def predict(
        self,
        axis: Axis,
        index: int,
        prompts: Prompts,
        mask_logits: torch.Tensor | None = None,
        multimask: bool | None = None,
        as_given: bool = False,
    ) -> Prediction:
        """Segment slice ``index`` along ``axis`` from ``prompts``.

        ``mask_logits`` (the ``low_res_logits`` of an earlier prediction) refines that mask
        with models that take mask prompts. ``multimask`` defaults to the models' advice:
        several candidates for a single point, one otherwise; of several, the one
        ``candidate_choice`` picks is returned. A box alone is taken as drawn by a person and
        decoded at the model's ``drawn_box_widenings`` (logits averaged), unless ``as_given``: a
        box carried from a neighbouring slice's mask (widened by propagation already), or one
        judged as drawn (the absent check at a seed). A model that zooms to the prompt segments
        each of the ``views`` and the mask it scores higher is returned, on the whole slice.
        """
        axis = Axis(axis)
        volume = self.require_volume()
        slice_hw = volume.slice_shape(axis)
        volume.check_slice_index(axis, index)
        prompts.validate(slice_hw, self.model.spec)
        if mask_logits is not None and not self.model.spec.accepts(PromptKind.MASK):
            raise PromptError(f"{self.model.spec.name} does not take mask prompts.")
        if multimask is None:
            multimask = len(prompts.points) == 1 and prompts.box is None
        multimask = multimask and self.model.spec.multimask
        seen = [
            self._predict_in(axis, index, view, prompts, mask_logits, multimask, as_given)
            for view in self.views(axis, prompts)
        ]
        return max(seen, key=lambda prediction: prediction.score)  # the first of equals: the window

    def _predict_in(
        self,
        axis: Axis,
        index: int,
        window: SliceWindow | None,
        prompts: Prompts,
        mask_logits: torch.Tensor | None,
        multimask: bool,
        as_given: bool,
    ) -> Prediction:
        """``predict`` on the slice's ``window`` (None: the whole slice), the mask placed on the whole slice."""
        slice_hw = self.require_volume().slice_shape(axis)
        embedding = self.embed(axis, index, window)
        if window is not None:
            prompts = window.to_window(prompts)  # in the window's pixels
        seen_hw = slice_hw if window is None else window.shape
        with _out_of_memory_as_error(self.model.device):
            if as_given or prompts.points or mask_logits is not None or multimask:
                decoded = self.model.decode(
                    embedding,
                    prompts.points_array(),
                    prompts.labels_array(),
                    prompts.clipped_box(seen_hw),
                    mask_logits,
                    multimask,
                )
            else:
                decoded = self._decode_drawn_box(embedding, prompts, seen_hw)
            self._require_finite("mask scores and logits", decoded.scores, decoded.low_res_logits)
            if len(decoded.scores) > 1:
                candidates = self.model.upsample_logits(decoded.low_res_logits, embedding)
                image = self.slice_image(axis, index)
                qualities = candidate_qualities(
                    candidates,
                    decoded.scores,
                    image if window is None else window.crop(image),
                    prompts.points_array(),
                    prompts.labels_array(),
                )
                best = choose_candidate(qualities)
                full = candidates[best]
            else:
                best = 0
                full = self.model.upsample_logits(decoded.low_res_logits[0], embedding)
            logits = decoded.low_res_logits[best]
        mask = (full > 0).cpu().numpy()
        return Prediction(
            mask=mask if window is None else window.paste(mask, slice_hw),
            score=float(decoded.scores[best]),
            scores=decoded.scores.float().cpu().numpy(),
            low_res_logits=logits,
        )

    def _decode_drawn_box(self, embedding: ImageEmbedding, prompts: Prompts, slice_hw: tuple[int, int]) -> Decoded:
        """A box alone, decoded as drawn and at each of the model's ``drawn_box_widenings``, the
        candidates' logits and scores averaged: one decoder call per width."""
        widenings = self.model.spec.drawn_box_widenings or (0.0,)
        # Model input pixels per slice pixel, along y and x (the longest side was scaled to the input).
        scale_y = embedding.resized_hw[0] / embedding.original_hw[0]
        scale_x = embedding.resized_hw[1] / embedding.original_hw[1]
        decoded = [
            self.model.decode(
                embedding, None, None, prompts.widened_box((w / scale_x, w / scale_y), slice_hw), None, False
            )
            for w in widenings
        ]
        if len(decoded) == 1:
            return decoded[0]
        return Decoded(
            torch.stack([d.low_res_logits for d in decoded]).mean(0),
            torch.stack([d.scores for d in decoded]).mean(0),
        )

    def _require_finite(self, what: str, *tensors: torch.Tensor) -> None:
        """Refuse NaN or infinite model output: finite inputs give finite outputs from sound weights, so
        a non-finite value means the weights are broken (NaN, overflowed or untrained), not the image."""
        if not all(bool(torch.isfinite(tensor).all()) for tensor in tensors):
            raise CheckpointError(
                f"{self.model.spec.name} produced NaN or infinite values in its {what}: its checkpoint is broken "
                "(damaged or not trained weights). Download or import the checkpoint again."
            )


@contextmanager
def _out_of_memory_as_error(device: torch.device) -> Iterator[None]:
    """Turn a device out-of-memory failure into an error that says so, after freeing cached blocks."""
    try:
        yield
    except (torch.OutOfMemoryError, MemoryError) as error:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        raise InferenceOutOfMemoryError.on(device.type, str(error)) from error
