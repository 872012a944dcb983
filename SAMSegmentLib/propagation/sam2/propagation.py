"""One propagation of a SAM 2 session, run by upstream's ``propagate_in_video``.

Forward and backward walks run in the session's one inference state, one after the other,
from the same starting slice, so the second walk can use the memory the first one built.
Each walk ends for an object when the stop rule refuses a slice; it ends for all when every
object has stopped, the range is done, or the cancel token is set (checked before every slice).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from ...volume import put_slice
from ..types import (
    CancelToken,
    Progress,
    PropagationRequest,
    SliceResult,
)
from ..walk import SliceWalk
from .memory_bank import PREDICTED_IOU_KEY
from .stop_rule import SAM2StopRule

if TYPE_CHECKING:
    from .session import SAM2VolumeSession


class SAM2Propagation(SliceWalk[SAM2StopRule]):
    """Propagate in the session's inference state with upstream's ``propagate_in_video``."""

    def __init__(
        self,
        session: SAM2VolumeSession,
        request: PropagationRequest,
        stop_rule: SAM2StopRule | None = None,
        cancel: CancelToken | None = None,
        progress: Progress | None = None,
    ) -> None:
        shape, count = session.volume.array.shape, len(session.frames)
        super().__init__(request, session.object_ids, shape, count, stop_rule or SAM2StopRule(), cancel, progress)
        self.session = session

    def __iter__(self) -> Iterator[SliceResult]:
        predictor = self.session.predictor
        encoded_before = predictor.encoded_frames
        try:
            for step in self.request.direction.steps():
                yield from self._walk(step)
        finally:
            self.result.embedded_slices = predictor.encoded_frames - encoded_before

    def _walk(self, step: int) -> Iterator[SliceResult]:
        start = self.request.seed_index
        # Upstream skips a backward walk that starts on slice 0, which would then never get
        # its mask; that walk is the starting slice alone, so it is walked forward instead.
        reverse = step < 0 and start > 0
        walk = self.session.predictor.propagate_in_video(
            self.session.state,
            start_frame_idx=start,
            max_frame_num_to_track=self._last - start if step > 0 else start - self._first,
            reverse=reverse,
        )
        first_walk = step == self.request.direction.steps()[0]
        live = list(self.result.objects)
        last_index: dict[str, int | None] = dict.fromkeys(live)
        start_area: dict[str, int] = {}
        try:
            while live:
                if self.cancel.cancelled:
                    self.result.cancelled = True
                    self._stop_all(live, step, last_index, "cancelled")
                    return
                item = next(walk, None)
                if item is None:
                    self._stop_all(live, step, last_index, "reached the end of the range")
                    return
                index, object_ids, masks = item
                for object_id in list(live):
                    mask = (masks[object_ids.index(object_id), 0] > 0).cpu().numpy()
                    reason, score = self._judge(object_id, index, mask, start_area.get(object_id))
                    if reason:
                        self._stop(object_id, step, last_index[object_id], reason)
                        live.remove(object_id)
                        continue
                    start_area.setdefault(object_id, int(mask.sum()))
                    last_index[object_id] = index
                    result = SliceResult(object_id, index, mask, score)
                    if self._accept(result):
                        yield result
                if index != start or first_walk:  # the starting slice counts once
                    self._tick()
        finally:
            walk.close()

    def _judge(self, object_id: str, index: int, mask: np.ndarray, start_area: int | None) -> tuple[str, float]:
        """The stop rule's reason to refuse the slice ("" to accept it) and the mask's score."""
        output = self.session.frame_output(object_id, index)
        assert output is not None, "propagate_in_video stores every slice it yields"
        object_score = float(output["object_score_logits"].reshape(-1)[0])
        reason = self.stop_rule.check(object_score, int(mask.sum()), start_area)
        return reason, float(output[PREDICTED_IOU_KEY].reshape(-1)[0])

    def _accept(self, result: SliceResult) -> bool:
        """Store the slice; False when it was already stored (the starting slice, walked twice)."""
        outcome = self.result.objects[result.object_id]
        if result.index in outcome.slices:
            return False
        put_slice(outcome.mask, self.request.axis, result.index, result.mask)
        outcome.slices.append(result.index)
        return True
