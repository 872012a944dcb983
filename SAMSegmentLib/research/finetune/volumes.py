"""Fine-tune on whole labelled volumes in one call: embed their labelled slices, split them into
training and validation, and train. What the command line and a Slicer button both run."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ...cancel import CancelToken, Progress
from ...datasets import LabelledCase
from ...errors import SAMSegmentError
from ...intensity import AUTO_PRESET
from ...models.base import PromptableModel
from ...predictor import VolumePredictor
from ...volume import Axis
from ..types import FinetuneOptions, FinetuneReport, ValidationSplit
from .data import TrainingSlice, embed_labelled_slices, label_values
from .train import finetune_decoder


@dataclass
class FinetuneRun:
    report: FinetuneReport
    training: list[TrainingSlice]
    validation: list[TrainingSlice]
    embedding_seconds: float


def finetune_on_volumes(
    model: PromptableModel,
    cases: Sequence[LabelledCase],
    structures: Sequence[str],
    split: ValidationSplit,
    options: FinetuneOptions,
    axis: Axis = Axis.AXIAL,
    intensity: str = AUTO_PRESET,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> FinetuneRun:
    """Train ``model``'s mask decoder in place on ``structures`` of ``cases``; Dice on the held-out part.

    A structure may be missing from some cases but must be labelled in at least one.
    """
    values = case_label_values(structures, cases)
    training: list[TrainingSlice] = []
    validation: list[TrainingSlice] = []
    started = time.perf_counter()
    for number, (case, case_values) in enumerate(zip(cases, values)):
        predictor = VolumePredictor(model)
        predictor.set_volume(case.volume, intensity)
        stage = f"Embedding image {number}"
        slices = embed_labelled_slices(
            predictor,
            case.labels,
            case_values,
            axis,
            number,
            progress=None if progress is None else functools.partial(_staged, progress, stage),
            cancel=cancel,
        )
        for item in slices:
            (validation if split.holds_out(number, item.index) else training).append(item)
    embedding_seconds = time.perf_counter() - started
    report = finetune_decoder(
        model,
        training,
        validation,
        options,
        progress=None if progress is None else functools.partial(_staged, progress, "Training the mask decoder"),
        cancel=cancel,
    )
    return FinetuneRun(report, training, validation, embedding_seconds)


def case_label_values(structures: Sequence[str], cases: Sequence[LabelledCase]) -> list[dict[str, int]]:
    """Each case's label value of each structure it has; every structure must be in some case."""
    if not structures:
        raise SAMSegmentError("Name at least one structure to train on.")
    values = [label_values(case.names, structures, missing_ok=True) for case in cases]
    missing = [structure for structure in structures if not any(structure in found for found in values)]
    if missing:
        known = sorted({name for case in cases for name in case.names.values()})
        raise SAMSegmentError(f"Not labelled in any image: {', '.join(missing)}. Labelled: {', '.join(known)}.")
    return values


def _staged(progress: Progress, stage: str, done: int, total: int, _inner_stage: str = "") -> None:
    """``progress`` for a step of ``stage``: the steps report numbers, the stage names them."""
    progress(done, total, stage)
