"""Propagation for models without memory (LiteMedSAM, SAM, HQ-SAM): carry each finished slice's
mask to the next slice as its prompt, and stop where the object ends."""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from ..errors import CancelledError
from ..predictor import Prediction, VolumePredictor
from ..prompts import Prompts
from ..registry import PromptKind
from ..volume import put_slice
from .appearance import ObjectAppearance, remove_foreign_growth
from .stop_rule import ObjectTrack, StopRule
from .types import (
    CancelToken,
    Progress,
    PropagationRequest,
    SliceResult,
    Stop,
)
from .walk import SliceWalk


@dataclass
class _Carry:
    """What one object passes from one slice to the next in one direction."""

    object_id: str
    prediction: Prediction
    track: ObjectTrack
    appearance: ObjectAppearance | None  # None: the carried masks are not gated by appearance


class MaskCarryPropagation(SliceWalk[StopRule]):
    """Carry each slice's mask to the next as its prompt.

    All objects advance together, so each slice is embedded once for all of them, and the
    embedding cache makes the seed slice and every slice of the second direction free of
    repeated encoder work.
    """

    def __init__(
        self,
        predictor: VolumePredictor,
        request: PropagationRequest,
        stop_rule: StopRule | None = None,
        cancel: CancelToken | None = None,
        progress: Progress | None = None,
    ) -> None:
        volume = predictor.require_volume()
        count = volume.slice_count(request.axis)
        objects = [o.object_id for o in request.objects]
        super().__init__(request, objects, volume.array.shape, count, stop_rule or StopRule(), cancel, progress)
        self.predictor = predictor
        self._spacing_xy = volume.slice_spacing(request.axis)
        self._slice_spacing_mm = volume.spacing_along(request.axis)

    def __iter__(self) -> Iterator[SliceResult]:
        embeds_before = self.predictor.embed_count
        try:
            seeds = yield from self._segment_seed()
            for step in self.request.direction.steps():
                yield from self._walk(step, seeds)
        finally:
            self.result.embedded_slices = self.predictor.embed_count - embeds_before

    def _segment_seed(self) -> Generator[SliceResult, None, list[_Carry]]:
        if self.cancel.cancelled:
            self.result.cancelled = True
            return []
        seeds = []
        axis, index = self.request.axis, self.request.seed_index
        if self.request.objects:
            # ``auto`` intensity adapts to the structure prompted first, and stays for the whole walk.
            self.predictor.choose_intensity(axis, index, self.request.objects[0].prompts)
        image = self.predictor.slice_image(axis, index)
        for item in self.request.objects:
            prediction = self.predictor.predict(axis, index, item.prompts)
            # A box read as drawn (averaged over widths) is judged absent with the box decoded as given too.
            as_drawn = (
                self.predictor.predict(axis, index, item.prompts, as_given=True)
                if self.predictor.model.spec.drawn_box_widenings
                else None
            )
            absent = self.stop_rule.absent_reason(prediction, image, as_drawn, self._spacing_xy)
            if absent:
                self.result.objects[item.object_id].stops.append(Stop("both", None, absent))
                continue
            self._accept(item.object_id, index, prediction)
            track = self.stop_rule.start(prediction, image, self._spacing_xy, self._slice_spacing_mm)
            seeds.append(_Carry(item.object_id, prediction, track, self._appearance(index, prediction)))
            yield SliceResult(item.object_id, index, prediction.mask, prediction.score)
        self._tick()
        return seeds

    def _walk(self, step: int, seeds: list[_Carry]) -> Iterator[SliceResult]:
        axis = self.request.axis
        live = [_Carry(s.object_id, s.prediction, s.track.copy(), s.appearance) for s in seeds]
        last_index: dict[str, int | None] = {c.object_id: self.request.seed_index for c in live}
        index = self.request.seed_index + step
        while live:
            if not self._first <= index <= self._last:
                self._stop_all((c.object_id for c in live), step, last_index, "reached the end of the range")
                return
            carried = [self._carried_prompt(carry.prediction) for carry in live]
            if not self._embed_unless_cancelled(index, [prompts for prompts, _ in carried]):
                self.result.cancelled = True
                self._stop_all((c.object_id for c in live), step, last_index, "cancelled")
                return
            image = self.predictor.slice_image(axis, index)
            still_live = []
            for carry, (prompts, mask_logits) in zip(live, carried):
                prediction, likeness = self._gated(
                    carry, index, self.predictor.predict(axis, index, prompts, mask_logits, as_given=True)
                )
                reason = self.stop_rule.check(carry.track, prediction, image, likeness)
                if reason:
                    self._stop(carry.object_id, step, last_index[carry.object_id], reason)
                    continue
                self._accept(carry.object_id, index, prediction)
                last_index[carry.object_id] = index
                still_live.append(_Carry(carry.object_id, prediction, carry.track, carry.appearance))
                yield SliceResult(carry.object_id, index, prediction.mask, prediction.score)
            live = still_live
            self._tick()
            index += step

    def _embed_unless_cancelled(self, index: int, prompts: list[Prompts]) -> bool:
        """Embed the next slice for every object at once (and each object's window of it, for a model
        that zooms to the box); False when cancelled before or during an encoder call (which a
        cancel interrupts, so Cancel answers within an operator)."""
        if self.cancel.cancelled:
            return False
        try:
            with self.predictor.model.interruptible(self.cancel):
                self.predictor.embed_for(self.request.axis, index, prompts)
        except CancelledError:
            return False
        return True

    def _appearance(self, index: int, seed: Prediction) -> ObjectAppearance | None:
        """What the prompted object looks like on its slice's whole-slice embedding, for the gate."""
        rule = self.stop_rule
        if not rule.appearance_gate:
            return None
        return ObjectAppearance.learn(
            self.predictor.embed(self.request.axis, index),
            seed.mask,
            self.predictor.model.input_size,
            rule.appearance_min_cells,
            rule.appearance_surround_cells,
            rule.appearance_neighbours,
        )

    def _gated(self, carry: _Carry, index: int, prediction: Prediction) -> tuple[Prediction, float | None]:
        """``prediction`` without what it adds to the previous mask on pixels unlike the object, and
        the share of its pixels that look like the object (None without an appearance)."""
        if carry.appearance is None or not prediction.mask.any():
            return prediction, None
        foreign = carry.appearance.foreign(self.predictor.embed(self.request.axis, index))
        mask = remove_foreign_growth(prediction.mask, carry.prediction.mask, foreign)
        likeness = float((~foreign[mask]).mean()) if mask.any() else None
        return dataclasses.replace(prediction, mask=mask), likeness

    def _carried_prompt(self, previous: Prediction) -> tuple[Prompts, Any]:
        """The next slice's prompt from the previous mask: a box with the stop rule's margin, and for
        models that take them an interior point and the previous logits (``Prediction.low_res_logits``)."""
        spec = self.predictor.model.spec
        mask = previous.mask
        ys, xs = np.nonzero(mask)
        margins = self.stop_rule.box_margin(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1, self._spacing_xy)
        tight = Prompts(box=(float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())))
        prompts = tight.widened(margins, mask.shape)
        mask_logits = None
        if spec.accepts(PromptKind.POINT):
            distance = ndimage.distance_transform_edt(mask)
            y, x = np.unravel_index(int(np.argmax(distance)), mask.shape)
            prompts.add_point(float(x), float(y))
        if spec.accepts(PromptKind.MASK):
            mask_logits = previous.low_res_logits
        return prompts, mask_logits

    def _accept(self, object_id: str, index: int, prediction: Prediction) -> None:
        outcome = self.result.objects[object_id]
        put_slice(outcome.mask, self.request.axis, index, prediction.mask)
        outcome.slices.append(index)
