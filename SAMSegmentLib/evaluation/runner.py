"""Run one prompting protocol on one structure and score it against the reference."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..metrics import dice, iou
from ..predictor import Prediction, VolumePredictor
from ..prompts import Prompts
from ..propagation import CancelToken, Direction, ObjectPrompts, PropagationRequest, Stop
from ..propagation.factory import make_propagator
from ..volume import Axis, put_slice
from .clicks import interior_point, next_click
from .protocols import box_from_reference, largest_slice

BOX = "box"
CLICKS = "clicks"


@dataclass
class EvaluationSettings:
    protocol: str = BOX
    clicks: int = 5
    axis: Axis = Axis.AXIAL
    propagate: bool = True
    direction: Direction = Direction.BOTH


@dataclass
class ClickStep:
    clicks: int
    dice_slice: float
    iou_slice: float
    dice_3d: float | None = None
    iou_3d: float | None = None


@dataclass
class StructureReport:
    name: str
    protocol: str
    seed_index: int
    dice_3d: float
    iou_3d: float
    dice_seed_slice: float
    reference_slices: tuple[int, int]
    segmented_slices: list[int]
    slices_beyond_reference: int
    stops: list[Stop]
    seconds: float
    click_curve: list[ClickStep] = field(default_factory=list)
    mask: np.ndarray | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        return {
            "protocol": self.protocol,
            "seed_slice": self.seed_index,
            "dice_3d": round(self.dice_3d, 4),
            "iou_3d": round(self.iou_3d, 4),
            "dice_seed_slice": round(self.dice_seed_slice, 4),
            "reference_slices": list(self.reference_slices),
            "segmented_slices": [min(self.segmented_slices), max(self.segmented_slices)] if self.segmented_slices else [],
            "slices_segmented": len(self.segmented_slices),
            "slices_beyond_reference": self.slices_beyond_reference,
            "stops": [{"direction": s.direction, "last_slice": s.last_index, "reason": s.reason} for s in self.stops],
            "seconds": round(self.seconds, 2),
            "click_curve": [vars(step) for step in self.click_curve],
        }


def evaluate_structure(
    predictor: VolumePredictor, reference: np.ndarray, name: str, settings: EvaluationSettings
) -> StructureReport:
    """Prompt ``name`` as the protocol says, optionally propagate, and compare with ``reference``."""
    if not reference.any():
        raise ValueError(f"The reference has no voxels of '{name}'.")
    started = time.perf_counter()
    axis = settings.axis
    seed = largest_slice(reference, axis)
    reference_slice = np.take(reference, seed, axis=axis.array_axis)
    if settings.protocol == BOX:
        prompts = box_from_reference(reference_slice)
        curve: list[ClickStep] = []
    elif settings.protocol == CLICKS:
        prompts, curve = _click_session(predictor, reference, seed, settings)
    else:
        raise ValueError(f"Unknown protocol '{settings.protocol}': use '{BOX}' or '{CLICKS}'.")
    mask, segmented, stops = _segment(predictor, prompts, seed, name, settings)
    seed_mask = np.take(mask, seed, axis=axis.array_axis)
    other_axes = tuple(a for a in range(3) if a != axis.array_axis)
    present = np.nonzero(reference.any(axis=other_axes))[0]
    return StructureReport(
        name=name,
        protocol=settings.protocol,
        seed_index=seed,
        dice_3d=dice(mask, reference),
        iou_3d=iou(mask, reference),
        dice_seed_slice=dice(seed_mask, reference_slice),
        reference_slices=(int(present.min()), int(present.max())),
        segmented_slices=sorted(segmented),
        slices_beyond_reference=sum(1 for s in segmented if s < present.min() or s > present.max()),
        stops=stops,
        seconds=time.perf_counter() - started,
        click_curve=curve,
        mask=mask,
    )


def _segment(
    predictor: VolumePredictor, prompts: Prompts, seed: int, name: str, settings: EvaluationSettings
) -> tuple[np.ndarray, list[int], list[Stop]]:
    """The 3D mask from ``prompts`` on the seed slice: propagated, or that slice alone."""
    volume = predictor.require_volume()
    if settings.propagate:
        request = PropagationRequest(settings.axis, seed, [ObjectPrompts(name, prompts)], settings.direction)
        propagator = make_propagator(predictor, request, None, CancelToken())
        for _ in propagator:
            pass
        outcome = propagator.result.objects[name]
        return outcome.mask, outcome.slices, outcome.stops
    mask = np.zeros(volume.array.shape, dtype=bool)
    prediction = predictor.predict(settings.axis, seed, prompts)
    put_slice(mask, settings.axis, seed, prediction.mask)
    return mask, [seed] if prediction.mask.any() else [], []


def _click_session(
    predictor: VolumePredictor, reference: np.ndarray, seed: int, settings: EvaluationSettings
) -> tuple[Prompts, list[ClickStep]]:
    """Click up to ``settings.clicks`` times on the seed slice, scoring after each click."""
    axis = settings.axis
    reference_slice = np.take(reference, seed, axis=axis.array_axis)
    prompts = Prompts()
    prompts.add_point(*interior_point(reference_slice))
    previous: Prediction | None = None
    curve: list[ClickStep] = []
    for count in range(1, settings.clicks + 1):
        logits = previous.low_res_logits if previous is not None else None
        previous = predictor.predict(axis, seed, prompts, mask_logits=logits)
        step = ClickStep(count, dice(previous.mask, reference_slice), iou(previous.mask, reference_slice))
        if settings.propagate:
            mask, _, _ = _segment(predictor, prompts, seed, "clicks", settings)
            step.dice_3d, step.iou_3d = dice(mask, reference), iou(mask, reference)
        curve.append(step)
        click = next_click(previous.mask, reference_slice)
        if click is None or count == settings.clicks:
            break
        prompts.add_point(click[0], click[1], positive=click[2])
    return prompts, curve
