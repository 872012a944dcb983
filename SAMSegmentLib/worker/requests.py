"""What the GUI (or the CLI) asks the inference worker to do.

Requests cross threads, so they carry plain data only: numpy arrays the caller has
copied and will not touch again, never MRML, VTK or Qt objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch

from ..intensity import AUTO_PRESET, IntensityMapping
from ..prompts import Prompts
from ..propagation import PropagationRequest, StopRule
from ..volume import Axis, Volume


@dataclass
class LoadModel:
    """Load a registered model; its weights come from ``checkpoint`` or the checkpoint store."""

    model: str  # a name from SAMSegmentLib.registry.MODELS
    device: str = "auto"  # "auto", "cuda", "mps", "cpu" (see SAMSegmentLib.device)
    checkpoint: Path | None = None


@dataclass
class SetVolume:
    """Segment this volume from now on. ``volume.array`` must be the caller's own copy.

    ``focus`` is the slice the user is looking at: the worker embeds it, and its
    neighbours, in the background so the first click is answered quickly.
    """

    volume: Volume
    preset: str | IntensityMapping = AUTO_PRESET
    volume_key: str | None = None  # identifies the content for the embedding cache; made up if None
    focus: tuple[Axis, int] | None = None


@dataclass
class Predict:
    """A preview mask for ``prompts`` on one slice; a newer Predict supersedes this one."""

    axis: Axis
    index: int
    prompts: Prompts
    mask_logits: np.ndarray | torch.Tensor | None = None  # low_res_logits of an earlier preview
    multimask: bool | None = None


@dataclass
class Propagate:
    """Propagate the seed slice's prompts through the volume, reporting each slice as it is done."""

    request: PropagationRequest
    stop_rule: StopRule | None = None


@dataclass
class Download:
    """Download (resuming) and verify a model's checkpoint into the checkpoint store."""

    model: str


@dataclass
class Cancel:
    """Cancel one request, or every queued and running one when ``request_id`` is None."""

    request_id: int | None = None


Request = Union[LoadModel, SetVolume, Predict, Propagate, Download, Cancel]
