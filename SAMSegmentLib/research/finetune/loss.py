"""Dice + focal loss on mask logits, as Segment Anything was trained (focal : Dice = 20 : 1)."""

from __future__ import annotations

import torch
from torchvision.ops import sigmoid_focal_loss

FOCAL_WEIGHT = 20.0


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice per mask (over the last two axes), averaged."""
    probabilities = torch.sigmoid(logits).flatten(-2)
    targets = targets.flatten(-2)
    overlap = (probabilities * targets).sum(-1)
    total = probabilities.sum(-1) + targets.sum(-1)
    return (1.0 - (2.0 * overlap + eps) / (total + eps)).mean()


def segmentation_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Focal loss (mean over pixels) weighted 20 to 1 against the Dice loss."""
    targets = targets.to(logits.dtype)
    return FOCAL_WEIGHT * sigmoid_focal_loss(logits, targets, reduction="mean") + dice_loss(logits, targets)
