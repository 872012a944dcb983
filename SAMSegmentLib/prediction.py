"""What a model answers for one slice's prompts: plain data, importable without torch (it crosses
the engine's process boundary; see ``protocol``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Prediction:
    """A mask at the slice's full resolution and what the model thinks of it."""

    mask: np.ndarray  # bool [y, x]
    score: float  # predicted IoU of the chosen mask
    scores: np.ndarray  # predicted IoU of every candidate
    # (L, L) logits of the chosen mask, reusable as a mask prompt: a torch.Tensor in the engine,
    # a numpy array once it has crossed the process boundary
    low_res_logits: Any
