"""Evaluate every structure of one labelled case; the unit of work of a dataset evaluation.

``evaluate_case`` takes and returns plain picklable values (the case's files, the model to open,
the settings), so cases can run in worker processes as well as one after another.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..cancel import Progress
from ..datasets import CaseFiles
from ..intensity import AUTO_PRESET
from ..model_choice import ModelChoice
from ..models.base import PromptableModel
from ..predictor import VolumePredictor
from .protocols import largest_slice, middle_slice
from .runner import (
    ChallengeReport,
    EvaluationSettings,
    OracleReport,
    StructureReport,
    box_problem,
    evaluate_challenge,
    evaluate_oracle,
    evaluate_structure,
)

EVALUATED = "evaluated"
ABSENT = "absent"  # named, but no voxel of it in the reference
UNPROMPTABLE = "unpromptable"  # its box cannot prompt the model (too thin)


@dataclass
class StructureResult:
    name: str
    status: str
    reason: str = ""
    box: StructureReport | None = None
    oracle: OracleReport | None = None
    oracle_margin: OracleReport | None = None
    challenge: ChallengeReport | None = None
    challenge_problem: str = ""  # why the challenge protocol did not run, when the rest did

    def to_json(self) -> dict:
        if self.status != EVALUATED:
            return {"status": self.status, "reason": self.reason}
        assert self.box is not None and self.oracle is not None
        result = {"status": self.status, "box": self.box.to_json(), "oracle": self.oracle.to_json()}
        if self.oracle_margin is not None:
            result["oracle_with_margin"] = self.oracle_margin.to_json()
        result["challenge"] = self.challenge.to_json() if self.challenge else {"skipped": self.challenge_problem}
        return result


@dataclass
class CaseReport:
    case: str
    image: str
    labels: str
    model: str
    intensity: dict
    structures: list[StructureResult]
    slices_embedded: int
    seconds: float
    masks: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # one-box masks, when asked for

    def to_json(self) -> dict:
        return {
            "image": self.image,
            "labels": self.labels,
            "model": self.model,
            "intensity": self.intensity,
            "slices_embedded": self.slices_embedded,
            "seconds": round(self.seconds, 1),
            "means": summarize(self.structures),
            "structures": {result.name: result.to_json() for result in self.structures},
        }


def evaluate_case(
    case: CaseFiles,
    settings: EvaluationSettings,
    model: ModelChoice | PromptableModel,
    intensity: str = AUTO_PRESET,
    structures: Sequence[str] | None = None,
    click_structures: Sequence[str] | None = None,
    progress: Progress | None = None,
    keep_masks: bool = False,
) -> CaseReport:
    """Score one box, the oracle and the challenge protocol on each structure of ``case``
    (``structures``: default all its named ones). The challenge runs on ``click_structures``
    (default all). A structure that is not in the case or cannot be prompted is recorded with the
    reason and the run goes on. ``progress`` gets (structures done, structures in all)."""
    started = time.perf_counter()
    labelled = case.load()
    names = list(structures) if structures is not None else sorted(labelled.names.values())
    predictor = VolumePredictor(model.open() if isinstance(model, ModelChoice) else model)
    predictor.set_volume(labelled.volume, intensity)
    before_prompts = vars(predictor.require_mapping())  # ``auto`` decides per structure (StructureReport.intensity)
    results = []
    masks = {}
    for done, name in enumerate(names, start=1):
        if name in labelled.names.values():
            result = _evaluate_one(predictor, labelled.mask(name), name, settings, click_structures)
        else:  # other cases of a dataset may have it
            result = StructureResult(name, ABSENT, "not among the structures named in this case")
        results.append(result)
        if keep_masks and result.box is not None and result.box.mask is not None:
            masks[name] = result.box.mask
        # A dataset's masks would not fit in memory.
        for report in (result.box, result.oracle, result.oracle_margin, result.challenge):
            if report is not None:
                report.mask = None
        if progress is not None:
            progress(done, len(names))
    return CaseReport(
        case=case.name,
        image=str(case.image),
        labels=str(case.labels),
        model=predictor.model.spec.name,
        intensity=before_prompts,
        structures=results,
        slices_embedded=predictor.embed_count,
        seconds=time.perf_counter() - started,
        masks=masks,
    )


def _evaluate_one(
    predictor: VolumePredictor,
    reference: np.ndarray,
    name: str,
    settings: EvaluationSettings,
    click_structures: Sequence[str] | None,
) -> StructureResult:
    if not reference.any():
        return StructureResult(name, ABSENT, "no voxel of it in the reference")
    problem = box_problem(predictor, reference, settings.axis, largest_slice(reference, settings.axis))
    if problem is not None:
        return StructureResult(name, UNPROMPTABLE, f"on its largest slice: {problem}")
    result = StructureResult(name, EVALUATED)
    result.box = evaluate_structure(predictor, reference, name, settings)
    result.oracle = evaluate_oracle(predictor, reference, settings)
    result.oracle_margin = evaluate_oracle(predictor, reference, settings, margin=True)
    if click_structures is not None and name not in click_structures:
        result.challenge_problem = "not among the structures chosen for clicks"
    elif problem := box_problem(predictor, reference, settings.axis, middle_slice(reference, settings.axis)):
        result.challenge_problem = f"on its middle slice: {problem}"
    else:
        result.challenge = evaluate_challenge(predictor, reference, name, settings)
    return result


def summarize(results: Sequence[StructureResult]) -> dict:
    """Means over the evaluated structures, and how many were left out and why."""
    evaluated = [r for r in results if r.status == EVALUATED]
    summary: dict = {
        "structures": len(results),
        "evaluated": len(evaluated),
        "absent": sum(r.status == ABSENT for r in results),
        "unpromptable": sum(r.status == UNPROMPTABLE for r in results),
    }
    if not evaluated:
        return summary
    boxes = [r.box for r in evaluated if r.box is not None]
    oracles = [r.oracle for r in evaluated if r.oracle is not None]
    widened = [r.oracle_margin for r in evaluated if r.oracle_margin is not None]
    summary["box"] = {
        "dice_3d": _mean(b.dice_3d for b in boxes),
        "nsd": _mean(b.nsd for b in boxes),
        "slices_beyond_reference": {
            "lower": _mean(b.beyond[0] for b in boxes),
            "upper": _mean(b.beyond[1] for b in boxes),
        },
        "slices_short_of_reference": {
            "lower": _mean(b.short[0] for b in boxes),
            "upper": _mean(b.short[1] for b in boxes),
        },
    }
    summary["oracle"] = {"dice_3d": _mean(o.dice_3d for o in oracles), "nsd": _mean(o.nsd for o in oracles)}
    if widened:
        summary["oracle_with_margin"] = {
            "dice_3d": _mean(o.dice_3d for o in widened),
            "nsd": _mean(o.nsd for o in widened),
        }
    challenges = [r.challenge for r in evaluated if r.challenge is not None]
    if challenges:
        steps = min(len(c.steps) for c in challenges)
        summary["challenge"] = {
            "structures": len(challenges),
            "dice": [_mean(c.steps[i].dice for c in challenges) for i in range(steps)],
            "nsd": [_mean(c.steps[i].nsd for c in challenges) for i in range(steps)],
            "dice_auc": _mean_or_none([c.auc("dice") for c in challenges]),
            "nsd_auc": _mean_or_none([c.auc("nsd") for c in challenges]),
        }
    return summary


def _mean(values: Iterable[float]) -> float:
    return round(float(np.mean(list(values))), 4)


def _mean_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return None if len(present) < len(values) else _mean(present)
