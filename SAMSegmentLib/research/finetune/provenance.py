"""What a fine-tuned model's provenance file says about how it was made (the CLI and Slicer both write it)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from ...volume import Axis
from ..types import FinetuneOptions, ValidationSplit
from .volumes import FinetuneRun


def finetune_provenance(
    outcome: FinetuneRun,
    data: Sequence[dict[str, str]],
    structures: Sequence[str],
    split: ValidationSplit,
    options: FinetuneOptions,
    axis: Axis,
    intensity: str,
) -> dict[str, Any]:
    """The record saved beside the checkpoint; ``data`` describes each labelled image (files or nodes)."""
    report = outcome.report
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": list(data),
        "structures": list(structures),
        "axis": Axis(axis).value,
        "intensity": intensity,
        "options": dataclasses.asdict(options),
        "validation": {
            "split": split.describe(),
            "jittered_boxes": {"before": dataclasses.asdict(report.before), "after": dataclasses.asdict(report.after)},
            "tight_boxes": {
                "before": dataclasses.asdict(report.tight_before),
                "after": dataclasses.asdict(report.tight_after),
            },
            "masks": report.validation_masks,
            "slices": len(outcome.validation),
        },
        "training": {
            "masks": report.training_masks,
            "epoch_losses": report.epoch_losses,
            "slices": len(outcome.training),
            "embedding_seconds": outcome.embedding_seconds,
            "training_seconds": report.seconds,
        },
    }
