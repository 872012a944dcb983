"""Background embedding of the slices propagation will need next.

The worker runs one slice of a plan at a time and looks at its request queue between
slices. A request that arrives while a slice is being embedded interrupts that encoder
run (see ``PromptableModel.interruptible``) and ends the plan, so it is served at once,
unless it is a Predict on that very slice, which needs the embedding anyway.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..cancel import CancelToken
from ..predictor import VolumePredictor
from ..prompts import Prompts
from ..slice_window import SliceWindow
from ..volume import Axis


def neighbour_order(seed: int, count: int, slice_count: int) -> list[int]:
    """``seed+1, seed-1, seed+2, seed-2, ...`` inside ``[0, slice_count)``, at most ``count`` of them.

    Alternating keeps both directions of a propagation supplied whichever way the
    object extends; slices past a volume edge are skipped, not counted.
    """
    order: list[int] = []
    distance = 1
    while len(order) < count and (seed - distance >= 0 or seed + distance < slice_count):
        order.extend(index for index in (seed + distance, seed - distance) if 0 <= index < slice_count)
        distance += 1
    return order[:count]


class Prefetch:
    """Embeds the seed slice, then up to ``count`` neighbours, one encoder call per ``step``.

    Goes through ``predictor.embed``, so propagation finds every prefetched slice under its
    own cache key; for a model that zooms to the prompt, each slice's window around ``prompts``
    too (the seed's; propagation's first carried boxes mostly fall in the same window). Stops short
    of the cache budget so that prefetching never evicts the seed or the slices it has just
    embedded. ``cancel`` and ``embedding`` may be used from any thread.
    """

    def __init__(
        self, predictor: VolumePredictor, axis: Axis, seed: int, count: int, prompts: Prompts | None = None
    ) -> None:
        self.predictor = predictor
        self.axis = Axis(axis)
        self.views = predictor.views(self.axis, prompts)
        self.cancel = CancelToken()
        self.embedding: int | None = None  # the slice whose encoder call is running
        self._plan = self._slices(seed, count)

    def step(self) -> bool:
        """Embed the next slice (or window of one) of the plan that is not cached yet; False once none is left.

        Raises ``CancelledError`` when ``cancel`` interrupted the encoder call.
        """
        for index, view in self._plan:
            if self.predictor.is_embedded(self.axis, index, view):
                continue
            self.embedding = index
            try:
                with self.predictor.model.interruptible(self.cancel):
                    self.predictor.embed(self.axis, index, view)
            finally:
                self.embedding = None
            return True
        return False

    def _slices(self, seed: int, count: int) -> Iterator[tuple[int, SliceWindow | None]]:
        """(slice, view) in the order they are embedded: the seed's views, then its neighbours'."""
        yield from ((seed, view) for view in self.views)
        # cached by the steps before
        slice_bytes = max(1, sum(self.predictor.embed(self.axis, seed, view).nbytes for view in self.views))
        fits = self.predictor.cache.budget_bytes // slice_bytes - 1
        slice_count = self.predictor.require_volume().slice_count(self.axis)
        yield from (
            (index, view) for index in neighbour_order(seed, min(count, fits), slice_count) for view in self.views
        )
