"""Fine-tune a model's mask decoder on labelled slices; the image and prompt encoders stay frozen.

Each step decodes the jittered label boxes of one slice against its kept embedding and takes a
Dice + focal loss against the labels at the slice's full resolution. Validation Dice is measured
before and after with the same boxes (jittered once, from a fixed seed), so the two compare, and
also with the tight label boxes: a box cut inside a small organ by the jitter is what the base
model does worst on, so the jittered score alone would overstate the gain for careful users.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from ...cancel import CancelToken, Progress
from ...errors import CancelledError, SAMSegmentError
from ...metrics import dice
from ...models.base import PromptableModel
from ..decoding import decode_batch
from ..types import DiceSummary, FinetuneOptions, FinetuneReport
from .data import TrainingSlice, jittered_boxes
from .loss import segmentation_loss

# Validation boxes come from their own generator so they do not depend on the training schedule.
_VALIDATION_SEED = 12345


def freeze_all_but_mask_decoder(model: PromptableModel) -> list[torch.nn.Parameter]:
    """Freeze the image and prompt encoders; return the mask decoder's parameters."""
    model.network.requires_grad_(False)
    decoder = model.network.mask_decoder
    decoder.requires_grad_(True)
    return [parameter for parameter in decoder.parameters() if parameter.requires_grad]


def validation_dice(
    model: PromptableModel, slices: Sequence[TrainingSlice], jitter_px: float
) -> dict[str, list[float]]:
    """Dice of every validation mask, by structure, from fixed jittered boxes."""
    rng = np.random.default_rng(_VALIDATION_SEED)
    scores: dict[str, list[float]] = {}
    for sample in slices:
        boxes = jittered_boxes(sample.masks, jitter_px, rng)
        with torch.inference_mode():
            low_res, _ = decode_batch(model, sample.embedding, boxes_xyxy=boxes)
            predicted = (model.upsample_logits(low_res[:, 0], sample.embedding) > 0).cpu().numpy()
        for structure, prediction, reference in zip(sample.structures, predicted, sample.masks):
            scores.setdefault(structure, []).append(dice(prediction, reference))
    return scores


def finetune_decoder(
    model: PromptableModel,
    training: Sequence[TrainingSlice],
    validation: Sequence[TrainingSlice],
    options: FinetuneOptions,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> FinetuneReport:
    """Train ``model``'s mask decoder in place on ``training``; measure Dice on ``validation``.

    A model running in ONNX Runtime trains its torch decoder; its exported decoder keeps the old
    weights, so load the saved fine-tuned model to segment with the new ones.
    """
    if not training:
        raise SAMSegmentError("No training slice has a chosen structure on it: widen the training slices or cases.")
    if not validation:
        raise SAMSegmentError("No validation slice has a chosen structure on it: change the validation split.")
    started = time.perf_counter()
    before = validation_dice(model, validation, options.box_jitter_px)
    tight_before = validation_dice(model, validation, 0.0)
    parameters = freeze_all_but_mask_decoder(model)
    optimiser = torch.optim.AdamW(parameters, lr=options.learning_rate, weight_decay=options.weight_decay)
    rng = np.random.default_rng(options.seed)
    losses = []
    steps = options.epochs * len(training)
    try:
        for epoch in range(options.epochs):
            epoch_loss = 0.0
            for step, position in enumerate(rng.permutation(len(training))):
                if cancel is not None and cancel.cancelled:
                    raise CancelledError("Fine-tuning cancelled; nothing was saved.")
                epoch_loss += _training_step(model, training[position], optimiser, options, rng)
                if progress is not None:
                    progress(epoch * len(training) + step + 1, steps)
            losses.append(epoch_loss / len(training))
    finally:
        model.network.requires_grad_(False)
    after = validation_dice(model, validation, options.box_jitter_px)
    return FinetuneReport(
        before=DiceSummary.of(before),
        after=DiceSummary.of(after),
        tight_before=DiceSummary.of(tight_before),
        tight_after=DiceSummary.of(validation_dice(model, validation, 0.0)),
        epoch_losses=losses,
        training_masks=sum(len(sample.structures) for sample in training),
        validation_masks=sum(len(sample.structures) for sample in validation),
        seconds=time.perf_counter() - started,
    )


def _training_step(
    model: PromptableModel,
    sample: TrainingSlice,
    optimiser: torch.optim.Optimizer,
    options: FinetuneOptions,
    rng: np.random.Generator,
) -> float:
    boxes = jittered_boxes(sample.masks, options.box_jitter_px, rng)
    low_res, _ = decode_batch(model, sample.embedding, boxes_xyxy=boxes)
    logits = model.upsample_logits(low_res[:, 0], sample.embedding)
    targets = torch.as_tensor(sample.masks, device=logits.device)
    loss = segmentation_loss(logits, targets)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return float(loss.detach())
