"""The research tools' options and results: plain data, importable without torch, because they
cross the engine's process boundary (see ``SAMSegmentLib.protocol``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from ..errors import SAMSegmentError
from ..volume import Axis


@dataclass(frozen=True)
class GridOptions:
    """How prompts are laid out and which masks are kept."""

    points_per_side: int = 16  # point models: points_per_side**2 points
    box_scales: tuple[float, ...] = (0.5, 0.25)  # box models: box side as a fraction of the slice side
    box_overlap: float = 0.5  # fraction of a box's side shared with its neighbour
    prompts_per_batch: int = 32
    min_predicted_iou: float = 0.8
    min_stability: float = 0.75
    stability_offset: float = 1.0
    nms_iou: float = 0.7
    min_area_px: int = 16

    def __post_init__(self) -> None:
        if self.points_per_side < 1 or self.prompts_per_batch < 1:
            raise ValueError("points_per_side and prompts_per_batch must be at least 1.")
        if not self.box_scales or not all(0.0 < scale <= 1.0 for scale in self.box_scales):
            raise ValueError(f"Box scales must lie in (0, 1], got {self.box_scales}.")
        if not 0.0 <= self.box_overlap < 1.0:
            raise ValueError(f"Box overlap must lie in [0, 1), got {self.box_overlap}.")
        if not 0.0 < self.nms_iou <= 1.0:
            raise ValueError(f"The NMS IoU threshold must lie in (0, 1], got {self.nms_iou}.")


@dataclass
class EverythingObject:
    """One structure found on one or more consecutive slices."""

    masks: dict[int, np.ndarray] = field(default_factory=dict)  # slice index -> bool [y, x]
    scores: list[float] = field(default_factory=list)  # predicted IoU of each slice's mask

    @property
    def score(self) -> float:
        return float(np.mean(self.scores))

    @property
    def voxels(self) -> int:
        return int(sum(int(mask.sum()) for mask in self.masks.values()))


@dataclass
class EverythingResult:
    axis: Axis
    objects: list[EverythingObject]  # best mean predicted IoU first
    masks_per_slice: dict[int, int]  # slice index -> masks kept on it


# SAMAug keeps more masks than SAM's generator (it used predicted IoU 0.5 and NMS 0.5): a prior
# map is a soft hint, and a doubtful mask still marks a region boundary.
PRIOR_GRID_OPTIONS = GridOptions(min_predicted_iou=0.5, min_stability=0.5, nms_iou=0.5)


class Quality(str, Enum):
    STABILITY = "stability"
    PREDICTED_IOU = "predicted_iou"


class Combine(str, Enum):
    SUM = "sum"  # SAMAug: overlapping masks add up
    MAX = "max"


@dataclass
class PriorMaps:
    prior: np.ndarray  # float32 [k, j, i]; zero on slices not processed
    boundary: np.ndarray  # float32 [k, j, i] in [0, 1]
    axis: Axis
    slices: list[int]
    masks_per_slice: dict[int, int]
    seconds_per_slice: float


@dataclass(frozen=True)
class ValidationSplit:
    """Which slices are held out: a slice range on every case, and/or whole cases."""

    slices: range | None = None
    cases: frozenset[int] = frozenset()  # positions in the list of labelled images

    def __post_init__(self) -> None:
        if self.slices is None and not self.cases:
            raise SAMSegmentError("Hold out some slices or cases for validation, or Dice cannot be measured.")

    def holds_out(self, case: int, index: int) -> bool:
        return case in self.cases or (self.slices is not None and index in self.slices)

    def describe(self) -> str:
        parts = []
        if self.slices is not None:
            parts.append(f"slices {self.slices.start}:{self.slices.stop}")
        if self.cases:
            parts.append("cases " + ",".join(str(case) for case in sorted(self.cases)))
        return " and ".join(parts)


@dataclass(frozen=True)
class FinetuneOptions:
    epochs: int = 5
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    box_jitter_px: float = 5.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise SAMSegmentError(f"Train for at least one epoch (got {self.epochs}).")
        if self.learning_rate <= 0:
            raise SAMSegmentError(f"The learning rate must be positive (got {self.learning_rate}).")
        if self.box_jitter_px < 0:
            raise SAMSegmentError(f"The box jitter cannot be negative (got {self.box_jitter_px}).")


@dataclass
class DiceSummary:
    per_structure: dict[str, float]  # mean Dice of each structure's validation masks
    mean: float  # mean over every validation mask

    @classmethod
    def of(cls, scores: dict[str, list[float]]) -> DiceSummary:
        every = [value for values in scores.values() for value in values]
        return cls({name: float(np.mean(values)) for name, values in scores.items()}, float(np.mean(every)))


@dataclass
class FinetuneReport:
    before: DiceSummary  # jittered validation boxes
    after: DiceSummary
    tight_before: DiceSummary  # tight label boxes
    tight_after: DiceSummary
    epoch_losses: list[float]  # mean training loss of each epoch
    training_masks: int
    validation_masks: int
    seconds: float
