"""What the GUI (or the CLI) asks the inference worker to do.

Requests cross threads, so they carry plain data only: numpy arrays the caller has
copied and will not touch again, never MRML, VTK or Qt objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..intensity import AUTO_PRESET, IntensityMapping
from ..prompts import Prompts
from ..propagation import PropagationRequest, StopRule
from ..propagation.sam2 import MemoryPolicy, SAM2StopRule
from ..volume import Axis, Volume
from .research import ComputePriorMaps, FineTune, Register, SegmentEverything


@dataclass
class LoadModel:
    """Load a registered model; its weights come from ``checkpoint`` or the checkpoint store."""

    model: str  # a name from SAMSegmentLib.registry.MODELS
    device: str = "auto"  # "auto", "cuda", "mps", "cpu" (see SAMSegmentLib.device)
    checkpoint: Path | None = None
    backend: str = "auto"  # "auto", "torch", "onnxruntime" (see SAMSegmentLib.backends.open_backend)


@dataclass
class SetVolume:
    """Segment this volume from now on. ``volume.array`` must be the caller's own copy.

    ``focus`` is the slice the user is looking at: the worker embeds it, and its
    neighbours, in the background so the first click is answered quickly (not with SAM 2
    models, which encode each slice when they reach it).

    ``memory_policy`` chooses which earlier slices SAM 2 family models remember (see
    ``propagation.sam2.memory_bank``); other models have no memory and ignore it. It is set
    with the volume because changing it starts SAM 2 over on this volume, as a new volume does.
    """

    volume: Volume
    intensity: str | IntensityMapping = AUTO_PRESET
    volume_key: str | None = None  # identifies the content for the embedding cache; made up if None
    focus: tuple[Axis, int] | None = None
    memory_policy: MemoryPolicy | str = MemoryPolicy.RECENT


@dataclass
class Predict:
    """A preview mask for ``prompts`` on one slice; a newer Predict supersedes this one.

    SAM 2 family models keep prompts and memory per object: ``object_id`` names the segment the
    prompts belong to (as in a PropagationRequest), and send every prompt of the slice each time.
    They keep the slice's own logits and choose single or multiple masks themselves, so they
    ignore ``mask_logits`` and ``multimask``.

    With ``logits`` False the answer's ``low_res_logits`` is None: a client that never sends
    them back as ``mask_logits`` need not receive them (256 KB a click for SAM).
    """

    axis: Axis
    index: int
    prompts: Prompts
    mask_logits: np.ndarray | None = None  # low_res_logits of an earlier preview
    multimask: bool | None = None
    object_id: str = "object"
    logits: bool = True


@dataclass
class Propagate:
    """Propagate the seed slice's prompts through the volume, reporting each slice as it is done.

    With ``volume_masks`` False, each object's ``mask`` in the final result is empty (shape
    (0, 0, 0)): a client that kept the SLICE messages has every slice already, and need not
    receive (and unpack) the whole volume again at the end.
    """

    request: PropagationRequest
    stop_rule: StopRule | SAM2StopRule | None = None  # SAM2StopRule for SAM 2 family models
    volume_masks: bool = True


@dataclass
class Download:
    """Download (resuming) and verify a model's checkpoint into the checkpoint store."""

    model: str


@dataclass
class Cancel:
    """Cancel one request, or every queued and running one when ``request_id`` is None."""

    request_id: int | None = None


Request = (
    LoadModel
    | SetVolume
    | Predict
    | Propagate
    | Download
    | SegmentEverything
    | ComputePriorMaps
    | FineTune
    | Register
    | Cancel
)
REQUEST_TYPES = (
    LoadModel,
    SetVolume,
    Predict,
    Propagate,
    Download,
    Cancel,
    SegmentEverything,
    ComputePriorMaps,
    FineTune,
    Register,
)
