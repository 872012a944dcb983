"""Prompt one structure as a protocol says and score the 3D result against the reference.

Three protocols, all on a model without memory (each slice segmented from its own prompts):

- one box (``evaluate_structure``): the reference's box on the slice where the structure is
  largest, propagated through the volume until the stop rule ends it: what a user of the effect
  gets from one box and Propagate;
- oracle (``evaluate_oracle``): the reference's box on every slice of the structure, each slice
  segmented on its own: what one-box propagation could reach with this model if it carried the
  structure exactly (tight, and widened by propagation's box margin);
- the CVPR 2025 interactive 3D challenge (``evaluate_challenge``): a box with the structure's
  first and last slice, then up to ``clicks`` corrective clicks, scored after each step.

A challenge click is a voxel; with a 2D model it lands on one slice. A user of the effect
corrects a propagated structure there the way the effect allows for models without memory. The
slice's prompts are the box around the structure on it (what the user draws when prompting a
slice) plus every click placed on it, for models that take points. On a slice the propagation
left empty (it stopped early, or skipped the slice), the user prompts it and propagates: the
propagation fills the run of empty slices around it and keeps the slices already segmented
(``PropagationRequest.filling_gap``). On a slice that holds the structure, the user prompts it
and Applies, which replaces that slice only (as on an empty slice where propagation finds nothing
at the prompts). A box-only model (LiteMedSAM) gets the box alone, so a second click on the same
slice changes nothing. A click on a slice where the structure is absent (a leak past its end)
cannot be prompted: the user erases that slice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy import integrate

from ..errors import PromptError
from ..metrics import NSD_TOLERANCE_MM, dice, iou, normalized_surface_distance
from ..predictor import VolumePredictor
from ..prompts import Prompts
from ..propagation import CancelToken, Direction, ObjectPrompts, ObjectResult, PropagationRequest, Stop, StopRule
from ..propagation.factory import make_propagator
from ..registry import PromptKind
from ..volume import Axis, put_slice
from .clicks import Click, next_click
from .protocols import box_from_reference, largest_slice, middle_slice, reference_extent

# How a challenge click changed the 3D mask.
RESEGMENTED = "slice segmented again"
GAP_FILLED = "propagated from the slice through the empty slices around it"
ERASED = "slice erased (the structure is not on it)"
UNCHANGED = "nothing to add (the slice already has its box; the model takes boxes only)"
CANNOT_PROMPT = "nothing to add (the slice cannot be prompted)"
PERFECT = "no error left"
GAP_OBJECT = "correction"  # the object ID of a propagation that fills a gap


@dataclass
class EvaluationSettings:
    axis: Axis = Axis.AXIAL
    direction: Direction = Direction.BOTH
    clicks: int = 5  # corrective clicks of the challenge protocol
    tolerance_mm: float = NSD_TOLERANCE_MM  # of the normalized surface distance


@dataclass
class StructureReport:
    """One box on the largest slice, propagated."""

    name: str
    seed_index: int
    dice_3d: float
    iou_3d: float
    nsd: float
    dice_seed_slice: float
    reference_slices: tuple[int, int]
    segmented_slices: list[int]
    stops: list[Stop]
    seconds: float
    intensity: str = ""  # the mapping's preset (with ``auto``, the one decided at the seed)
    mask: np.ndarray | None = field(default=None, repr=False)

    @property
    def beyond(self) -> tuple[int, int]:
        """Slices segmented below the reference's first slice and above its last."""
        first, last = self.reference_slices
        return (sum(1 for s in self.segmented_slices if s < first), sum(1 for s in self.segmented_slices if s > last))

    @property
    def short(self) -> tuple[int, int]:
        """Reference slices left out below the first segmented slice and above the last."""
        first, last = self.reference_slices
        if not self.segmented_slices:
            return last - first + 1, 0
        return max(0, min(self.segmented_slices) - first), max(0, last - max(self.segmented_slices))

    @property
    def slices_beyond_reference(self) -> int:
        return sum(self.beyond)

    def to_json(self) -> dict:
        return {
            "seed_slice": self.seed_index,
            "dice_3d": round(self.dice_3d, 4),
            "iou_3d": round(self.iou_3d, 4),
            "nsd": round(self.nsd, 4),
            "dice_seed_slice": round(self.dice_seed_slice, 4),
            "reference_slices": list(self.reference_slices),
            "segmented_slices": [min(self.segmented_slices), max(self.segmented_slices)]
            if self.segmented_slices
            else [],
            "slices_segmented": len(self.segmented_slices),
            "slices_beyond_reference": {"lower": self.beyond[0], "upper": self.beyond[1]},
            "slices_short_of_reference": {"lower": self.short[0], "upper": self.short[1]},
            "stops": [{"direction": s.direction, "last_slice": s.last_index, "reason": s.reason} for s in self.stops],
            "intensity": self.intensity,
            "seconds": round(self.seconds, 2),
        }


@dataclass
class OracleReport:
    """The reference's box on every slice of the structure."""

    dice_3d: float
    iou_3d: float
    nsd: float
    prompted_slices: int
    unprompted_slices: list[int]  # slices of the extent without a usable box (structure absent or too thin)
    mask: np.ndarray | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        return {
            "dice_3d": round(self.dice_3d, 4),
            "iou_3d": round(self.iou_3d, 4),
            "nsd": round(self.nsd, 4),
            "prompted_slices": self.prompted_slices,
            "unprompted_slices": self.unprompted_slices,
        }


@dataclass
class ClickStep:
    clicks: int
    dice: float
    nsd: float
    click: Click | None = None
    correction: str = ""

    def to_json(self) -> dict:
        step: dict = {"clicks": self.clicks, "dice": round(self.dice, 4), "nsd": round(self.nsd, 4)}
        if self.click is not None:
            step["click"] = {"index_kji": list(self.click.index), "positive": self.click.positive}
        if self.correction:
            step["correction"] = self.correction
        return step


@dataclass
class ChallengeReport:
    """The CVPR 2025 interactive 3D protocol: a box (step 0), then corrective clicks."""

    seed_index: int
    slice_range: tuple[int, int]
    steps: list[ClickStep]
    seconds: float
    mask: np.ndarray | None = field(default=None, repr=False)

    def auc(self, metric: str) -> float | None:
        """Area under the metric's curve over the click steps (trapezoids one click wide), leaving
        out the box step, as the challenge's CVPR25_iter_eval.py does (5 clicks: at most 4)."""
        values = [getattr(step, metric) for step in self.steps[1:]]
        return float(integrate.trapezoid(values)) if len(values) >= 2 else None

    def to_json(self) -> dict:
        dice_auc, nsd_auc = self.auc("dice"), self.auc("nsd")
        return {
            "seed_slice": self.seed_index,
            "slice_range": list(self.slice_range),
            "steps": [step.to_json() for step in self.steps],
            "dice_final": round(self.steps[-1].dice, 4),
            "nsd_final": round(self.steps[-1].nsd, 4),
            "dice_auc": None if dice_auc is None else round(dice_auc, 4),
            "nsd_auc": None if nsd_auc is None else round(nsd_auc, 4),
            "seconds": round(self.seconds, 2),
        }


def box_problem(predictor: VolumePredictor, reference: np.ndarray, axis: Axis, index: int) -> str | None:
    """Why the reference's box on slice ``index`` cannot prompt the model, or None when it can."""
    reference_slice = np.take(reference, index, axis=axis.array_axis)
    if not reference_slice.any():
        return f"the structure is not on slice {index}"
    try:
        box_from_reference(reference_slice).validate(reference_slice.shape, predictor.model.spec)
    except PromptError as error:
        return str(error)
    return None


def evaluate_structure(
    predictor: VolumePredictor, reference: np.ndarray, name: str, settings: EvaluationSettings
) -> StructureReport:
    """Prompt ``name`` with one box on its largest slice, propagate, and compare with ``reference``."""
    _require_voxels(reference, name)
    started = time.perf_counter()
    axis = settings.axis
    seed = largest_slice(reference, axis)
    reference_slice = np.take(reference, seed, axis=axis.array_axis)
    mask, segmented, stops = _propagate(predictor, box_from_reference(reference_slice), seed, name, settings)
    return StructureReport(
        name=name,
        seed_index=seed,
        dice_3d=dice(mask, reference),
        iou_3d=iou(mask, reference),
        nsd=_nsd(predictor, mask, reference, settings),
        dice_seed_slice=dice(np.take(mask, seed, axis=axis.array_axis), reference_slice),
        reference_slices=reference_extent(reference, axis),
        segmented_slices=sorted(segmented),
        stops=stops,
        seconds=time.perf_counter() - started,
        intensity=predictor.require_mapping().preset,
        mask=mask,
    )


def evaluate_oracle(
    predictor: VolumePredictor, reference: np.ndarray, settings: EvaluationSettings, margin: bool = False
) -> OracleReport:
    """Segment every slice of the reference's extent from the reference's box on it (with the
    intensity mapping in force: after ``evaluate_structure``, the one its seed decided): tight, or with
    ``margin`` widened as propagation widens the box it carries (the prompts propagation would
    give every slice if each previous mask were exact; small structures do better with it)."""
    axis = settings.axis
    mask = np.zeros(reference.shape, bool)
    unprompted = []
    first, last = reference_extent(reference, axis)
    for index in range(first, last + 1):
        if box_problem(predictor, reference, axis, index) is not None:
            unprompted.append(index)
            continue
        reference_slice = np.take(reference, index, axis=axis.array_axis)
        prompts = box_from_reference(reference_slice)
        if margin:
            prompts = _widened(prompts, reference_slice.shape)
        # With the margin, the box stands for one propagation carries (decoded as given).
        put_slice(mask, axis, index, predictor.predict(axis, index, prompts, as_given=margin).mask)
    return OracleReport(
        dice_3d=dice(mask, reference),
        iou_3d=iou(mask, reference),
        nsd=_nsd(predictor, mask, reference, settings),
        prompted_slices=last - first + 1 - len(unprompted),
        unprompted_slices=unprompted,
        mask=mask,
    )


def evaluate_challenge(
    predictor: VolumePredictor, reference: np.ndarray, name: str, settings: EvaluationSettings
) -> ChallengeReport:
    """The box on the middle slice propagated within the structure's slices, then up to
    ``settings.clicks`` corrective clicks, each correcting the slice it lands on."""
    _require_voxels(reference, name)
    started = time.perf_counter()
    axis = settings.axis
    seed = middle_slice(reference, axis)
    extent = reference_extent(reference, axis)
    box = box_from_reference(np.take(reference, seed, axis=axis.array_axis))
    mask, _, _ = _propagate(predictor, box, seed, name, settings, extent)
    steps = [ClickStep(0, dice(mask, reference), _nsd(predictor, mask, reference, settings))]
    slice_prompts: dict[int, Prompts] = {seed: box}
    for count in range(1, settings.clicks + 1):
        click = next_click(mask, reference)
        correction = (
            PERFECT if click is None else _correct(predictor, reference, mask, click, slice_prompts, extent, axis)
        )
        steps.append(
            ClickStep(count, dice(mask, reference), _nsd(predictor, mask, reference, settings), click, correction)
        )
    return ChallengeReport(seed, extent, steps, time.perf_counter() - started, mask)


def _widened(prompts: Prompts, slice_hw: tuple[int, int]) -> Prompts:
    """The box widened by the margin propagation adds to the box it carries, within the slice."""
    assert prompts.box is not None
    x0, y0, x1, y1 = prompts.box
    margins = StopRule().box_margin(x1 - x0 + 1, y1 - y0 + 1)
    return prompts.widened(margins, slice_hw)


def _correct(
    predictor: VolumePredictor,
    reference: np.ndarray,
    mask: np.ndarray,
    click: Click,
    slice_prompts: dict[int, Prompts],
    extent: tuple[int, int],
    axis: Axis,
) -> str:
    """Correct ``mask`` in place from the slice ``click`` lands on (propagating within ``extent``
    when that slice is empty); how it was corrected."""
    index = click.index[axis.array_axis]
    y, x = (position for a, position in enumerate(click.index) if a != axis.array_axis)
    reference_slice = np.take(reference, index, axis=axis.array_axis)
    if not reference_slice.any():
        put_slice(mask, axis, index, np.zeros_like(reference_slice))
        return ERASED
    spec = predictor.model.spec
    placed = slice_prompts.get(index)
    if placed is None:
        has_box = box_problem(predictor, reference, axis, index) is None
        prompts = box_from_reference(reference_slice) if has_box else Prompts()
    elif spec.accepts(PromptKind.POINT):
        prompts = Prompts(list(placed.points), list(placed.labels), placed.box)
    else:
        return UNCHANGED
    if spec.accepts(PromptKind.POINT):
        prompts.add_point(x, y, positive=click.positive)
    try:
        prompts.validate(reference_slice.shape, spec)
    except PromptError:
        return CANNOT_PROMPT
    slice_prompts[index] = prompts
    if not np.take(mask, index, axis=axis.array_axis).any():
        request = PropagationRequest(axis, index, [ObjectPrompts(GAP_OBJECT, prompts)], Direction.BOTH, extent)
        filled = _run(predictor, request.filling_gap(mask))
        for filled_index in filled.slices:
            put_slice(mask, axis, filled_index, np.take(filled.mask, filled_index, axis=axis.array_axis))
        if filled.slices:
            return GAP_FILLED
        # Propagation judged the prompted slice empty and wrote nothing: the user Applies the preview.
    put_slice(mask, axis, index, predictor.predict(axis, index, prompts).mask)
    return RESEGMENTED


def _propagate(
    predictor: VolumePredictor,
    prompts: Prompts,
    seed: int,
    name: str,
    settings: EvaluationSettings,
    slice_range: tuple[int, int] | None = None,
) -> tuple[np.ndarray, list[int], list[Stop]]:
    """The 3D mask propagated from ``prompts`` on the seed slice."""
    request = PropagationRequest(settings.axis, seed, [ObjectPrompts(name, prompts)], settings.direction, slice_range)
    outcome = _run(predictor, request)
    return outcome.mask, outcome.slices, outcome.stops


def _run(predictor: VolumePredictor, request: PropagationRequest) -> ObjectResult:
    """The outcome of a one-object ``request``."""
    (outcome,) = make_propagator(predictor, request, None, CancelToken()).run().objects.values()
    return outcome


def _nsd(predictor: VolumePredictor, mask: np.ndarray, reference: np.ndarray, settings: EvaluationSettings) -> float:
    spacing_kji = predictor.require_volume().spacing[::-1]
    return normalized_surface_distance(mask, reference, spacing_kji, settings.tolerance_mm)


def _require_voxels(reference: np.ndarray, name: str) -> None:
    if not reference.any():
        raise ValueError(f"The reference has no voxels of '{name}'.")
