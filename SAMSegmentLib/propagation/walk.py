"""What every model family's propagation shares: the request, its stop rule, cancel and progress,
one result per object, the run loop, progress ticks and the record of where each direction stopped."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

import numpy as np

from .types import (
    CancelToken,
    ObjectResult,
    Progress,
    PropagationRequest,
    PropagationResult,
    SliceResult,
    Stop,
    step_name,
)

Rule = TypeVar("Rule")


class SliceWalk(ABC, Generic[Rule]):
    """Iterate to get results slice by slice; ``result`` holds every object's masks afterwards
    (also after a cancel, then with ``cancelled`` set)."""

    def __init__(
        self,
        request: PropagationRequest,
        object_ids: Iterable[str],
        volume_shape: tuple[int, ...],
        slice_count: int,
        stop_rule: Rule,
        cancel: CancelToken | None,
        progress: Progress | None,
    ) -> None:
        self.request = request
        self.stop_rule = stop_rule
        self.cancel = cancel or CancelToken()
        self.progress = progress
        self.result = PropagationResult({i: ObjectResult(i, np.zeros(volume_shape, bool)) for i in object_ids})
        self._first, self._last = request.bounds(slice_count)
        self._planned = request.planned_slices(slice_count)
        self._done = 0

    @abstractmethod
    def __iter__(self) -> Iterator[SliceResult]: ...

    def run(self) -> PropagationResult:
        for _ in self:
            pass
        return self.result

    def _tick(self) -> None:
        """One more slice done (for every object at once)."""
        self._done += 1
        if self.progress is not None:
            self.progress(self._done, self._planned)

    def _stop(self, object_id: str, step: int, last_index: int | None, reason: str) -> None:
        self.result.objects[object_id].stops.append(Stop(step_name(step), last_index, reason))

    def _stop_all(self, object_ids: Iterable[str], step: int, last_index: dict[str, int | None], reason: str) -> None:
        for object_id in object_ids:
            self._stop(object_id, step, last_index.get(object_id), reason)
