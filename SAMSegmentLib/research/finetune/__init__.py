"""Fine-tune a model's mask decoder on the user's labelled volumes and keep the result as a model.

Finding and listing fine-tuned models (``store``) needs no torch, so Slicer's GUI can list them;
training loads torch when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..types import DiceSummary, FinetuneOptions, FinetuneReport, ValidationSplit
from .store import (
    FINETUNED_FOLDER,
    check_new_name,
    find_finetuned,
    finetuned_dir,
    list_finetuned_models,
    save_finetuned,
)

if TYPE_CHECKING:
    from .data import TrainingSlice, embed_labelled_slices, jittered_boxes, label_values, mask_box
    from .train import finetune_decoder, freeze_all_but_mask_decoder, validation_dice
    from .volumes import FinetuneRun, case_label_values, finetune_on_volumes

_LAZY = {
    "TrainingSlice": ".data",
    "embed_labelled_slices": ".data",
    "jittered_boxes": ".data",
    "label_values": ".data",
    "mask_box": ".data",
    "finetune_decoder": ".train",
    "freeze_all_but_mask_decoder": ".train",
    "validation_dice": ".train",
    "FinetuneRun": ".volumes",
    "case_label_values": ".volumes",
    "finetune_on_volumes": ".volumes",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FINETUNED_FOLDER",
    "DiceSummary",
    "FinetuneOptions",
    "FinetuneReport",
    "FinetuneRun",
    "TrainingSlice",
    "ValidationSplit",
    "case_label_values",
    "check_new_name",
    "embed_labelled_slices",
    "find_finetuned",
    "finetune_decoder",
    "finetune_on_volumes",
    "finetuned_dir",
    "freeze_all_but_mask_decoder",
    "jittered_boxes",
    "label_values",
    "list_finetuned_models",
    "mask_box",
    "save_finetuned",
    "validation_dice",
]
