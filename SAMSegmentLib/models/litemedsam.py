"""LiteMedSAM: TinyViT encoder with SAM's prompt encoder and mask decoder, 256x256 input."""

from __future__ import annotations

import torch

from .sam import SAMModel


class LiteMedSAMModel(SAMModel):
    """Same encoder/decoder interface as SAM; only the pixel normalisation differs."""

    # LiteMedSAM learnt from images resampled to 256 px, which smooths their noise; given a CT's own
    # unsmoothed pixels it fails. The reference box in a 256 px window of the shared 1 mm CT's
    # slice 5: colon Dice 0.13 and left humerus 0.21; windows of 255 or 257 px, which are
    # resampled: colon 0.76 and 0.74; sigma 0.5: 0.73 and 0.90 (Testing/calibration/2026-11-30_prompt_window.json).
    native_size_smoothing = 0.5

    def normalise(self, image01: torch.Tensor) -> torch.Tensor:
        # LiteMedSAM was trained on images scaled to [0, 1] with no mean/std normalisation.
        return image01
