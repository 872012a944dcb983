"""Background embedding of the slices propagation will need next (issue 5).

The worker runs one step of a plan at a time and looks at its request queue between
steps, so a real request waits for at most one slice of encoder work (about 2 s for
LiteMedSAM on a laptop CPU, tens of milliseconds on a GPU).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..predictor import VolumePredictor
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


def prefetch_steps(predictor: VolumePredictor, axis: Axis, seed: int, count: int) -> Iterator[int]:
    """Embed the seed slice, then up to ``count`` neighbours, one encoder call per step.

    Yields the index of each slice it embedded; slices already in the cache cost no step.
    Goes through ``predictor.embed``, so propagation finds every prefetched slice under
    its own cache key. Stops short of the cache budget so that prefetching never evicts
    the seed or the slices it has just embedded.
    """
    volume = predictor.require_volume()
    seed_was_cached = predictor.is_embedded(axis, seed)
    slice_bytes = max(1, predictor.embed(axis, seed).nbytes)
    if not seed_was_cached:
        yield seed
    fits = predictor.cache.budget_bytes // slice_bytes - 1
    for index in neighbour_order(seed, min(count, fits), volume.slice_count(axis)):
        if not predictor.is_embedded(axis, index):
            predictor.embed(axis, index)
            yield index
