"""The propagation API shared by every model family: requests, per-slice results, stops, cancel.

Propagation checks its ``CancelToken`` before every slice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Protocol

import numpy as np

from ..cancel import CancelToken, Progress  # noqa: F401 - re-exported with the propagation API
from ..prompts import Prompts
from ..volume import Axis


class Direction(str, Enum):
    FORWARD = "forward"  # increasing slice index
    BACKWARD = "backward"
    BOTH = "both"

    def steps(self) -> tuple[int, ...]:
        return {Direction.FORWARD: (1,), Direction.BACKWARD: (-1,), Direction.BOTH: (1, -1)}[self]


def step_name(step: int) -> str:
    return Direction.FORWARD.value if step > 0 else Direction.BACKWARD.value


@dataclass
class ObjectPrompts:
    """One object's prompts on the seed slice; ``object_id`` names the segment it belongs to."""

    object_id: str
    prompts: Prompts


@dataclass
class PropagationRequest:
    axis: Axis
    seed_index: int
    objects: list[ObjectPrompts]
    direction: Direction = Direction.BOTH
    slice_range: tuple[int, int] | None = None  # inclusive first and last slice allowed

    def bounds(self, slice_count: int) -> tuple[int, int]:
        first, last = self.slice_range if self.slice_range is not None else (0, slice_count - 1)
        first, last = max(0, min(first, last)), min(slice_count - 1, max(first, last))
        if not first <= self.seed_index <= last:
            raise ValueError(f"The prompted slice {self.seed_index} is outside the range {first}..{last}.")
        return first, last

    def planned_slices(self, slice_count: int) -> int:
        """How many slices the walk visits at most, the seed included (the progress total)."""
        first, last = self.bounds(slice_count)
        steps = self.direction.steps()
        return 1 + (last - self.seed_index if 1 in steps else 0) + (self.seed_index - first if -1 in steps else 0)

    def filling_gap(self, existing: np.ndarray) -> PropagationRequest:
        """This request kept to the run of slices around the seed where the object has nothing yet
        (``existing``: the object's mask so far, bool [k, j, i]), so propagating from a slice it
        missed fills that gap and leaves the slices already segmented as they are. Unchanged when
        the object has nothing yet, or when the seed slice holds some of it: prompting a slice
        that is already segmented and propagating replaces, as before."""
        held = np.asarray(existing.any(axis=tuple(a for a in range(3) if a != self.axis.array_axis)))
        if held[self.seed_index] or not held.any():
            return self
        first, last = self.bounds(len(held))
        held_below = np.flatnonzero(held[first : self.seed_index])
        held_above = np.flatnonzero(held[self.seed_index + 1 : last + 1])
        gap = (
            first + int(held_below[-1]) + 1 if held_below.size else first,
            self.seed_index + int(held_above[0]) if held_above.size else last,
        )
        return replace(self, slice_range=gap)


@dataclass
class SliceResult:
    """One object's mask on one slice, as soon as it is computed."""

    object_id: str
    index: int
    mask: np.ndarray  # bool [y, x]
    score: float  # the model's quality estimate for this mask


@dataclass
class Stop:
    """Where and why propagation ended in one direction for one object."""

    direction: str  # "forward" or "backward"
    last_index: int | None  # last slice that received a mask; None if none did in this direction
    reason: str


@dataclass
class ObjectResult:
    object_id: str
    mask: np.ndarray  # bool [k, j, i]
    slices: list[int] = field(default_factory=list)
    stops: list[Stop] = field(default_factory=list)

    @property
    def absent(self) -> bool:
        """True when the model found nothing, not even on the prompted slice."""
        return not self.slices


@dataclass
class PropagationResult:
    objects: dict[str, ObjectResult]
    cancelled: bool = False
    embedded_slices: int = 0


class Propagator(Protocol):
    """A model family's propagation. Iterating yields results slice by slice; ``result`` is complete
    once the iteration ends (also after a cancel, then with ``cancelled`` set)."""

    result: PropagationResult

    def __iter__(self) -> Iterator[SliceResult]: ...

    def run(self) -> PropagationResult:
        """Iterate to the end; the result."""
        ...
