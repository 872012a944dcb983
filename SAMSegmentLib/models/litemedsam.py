"""LiteMedSAM: TinyViT encoder with SAM's prompt encoder and mask decoder, 256x256 input."""

from __future__ import annotations

import torch

from .sam import SAMModel


class LiteMedSAMModel(SAMModel):
    """Same encoder/decoder interface as SAM; only the pixel normalisation differs."""

    def normalise(self, image01: torch.Tensor) -> torch.Tensor:
        # LiteMedSAM was trained on images scaled to [0, 1] with no mean/std normalisation.
        return image01
