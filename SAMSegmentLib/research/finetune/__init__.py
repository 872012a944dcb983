"""Fine-tune a model's mask decoder on the user's labelled volumes and keep the result as a model."""

from ..types import DiceSummary, FinetuneOptions, FinetuneReport, ValidationSplit
from .data import TrainingSlice, embed_labelled_slices, jittered_boxes, label_values, mask_box
from .store import (
    FINETUNED_FOLDER,
    check_new_name,
    find_finetuned,
    finetuned_dir,
    list_finetuned_models,
    save_finetuned,
)
from .train import (
    finetune_decoder,
    freeze_all_but_mask_decoder,
    validation_dice,
)
from .volumes import FinetuneRun, case_label_values, finetune_on_volumes

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
