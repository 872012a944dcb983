"""Requests for the research tools, served on the engine's inference thread like the others.

Plain data only, as in ``requests``: numpy volumes and masks the caller has copied. A request
that names no ``volume`` works on the worker's current volume (the one the effect sent with
SetVolume), so slices it has already embedded are reused; one that names a volume leaves the
current volume as it is, so a module panel never pulls the effect's volume from under it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..datasets import LabelledCase
from ..intensity import AUTO_PRESET
from ..research.registration import RegistrationOptions
from ..research.types import (
    PRIOR_GRID_OPTIONS,
    Combine,
    FinetuneOptions,
    FinetuneReport,
    GridOptions,
    PriorMaps,
    Quality,
    ValidationSplit,
)
from ..volume import Axis, Volume


@dataclass
class SegmentEverything:
    """Every structure on slices ``first``..``last`` (inclusive; one slice when ``last`` is None).

    Result: an ``research.everything.EverythingResult``; PROGRESS is (slices done, slices).
    """

    axis: Axis
    first: int
    last: int | None = None
    options: GridOptions = field(default_factory=GridOptions)
    link_iou: float = 0.5
    volume: Volume | None = None  # None: the current volume
    intensity: str = AUTO_PRESET  # intensity preset of ``volume`` (the current volume keeps its own)
    volume_key: str | None = None  # identifies ``volume``'s content, so a second run reuses its embeddings


@dataclass
class ComputePriorMaps:
    """SAM segmentation and boundary prior maps of ``slices`` along ``axis`` (every slice when None).

    Result: ``PriorMapsReady``; PROGRESS is (slices done, slices).
    """

    axis: Axis = Axis.AXIAL
    slices: Sequence[int] | None = None
    options: GridOptions = PRIOR_GRID_OPTIONS
    quality: Quality = Quality.STABILITY
    combine: Combine = Combine.SUM
    volume: Volume | None = None  # None: the current volume
    intensity: str = AUTO_PRESET
    volume_key: str | None = None
    # Also write sam_prior, sam_boundary and sam_stacked (the volume as the model saw it and both
    # priors, a U-Net's input) NRRD files here: a folder on the engine's computer.
    output_folder: Path | None = None


@dataclass
class PriorMapsReady:
    """Result of ComputePriorMaps, on the grid of the volume it was computed on."""

    maps: PriorMaps  # float32 [k, j, i] prior and boundary
    written: dict[str, Path] = field(default_factory=dict)  # files by role, when an output folder was given


@dataclass
class FineTune:
    """Fine-tune a fresh copy of ``base_model``'s mask decoder and save it as model ``name``.

    The loaded model is left as it was. Result: ``FineTuned``; PROGRESS is (done, total) with the
    stage ("Embedding image 0", "Training the mask decoder") as the message's text.
    """

    base_model: str
    name: str
    cases: list[LabelledCase]
    structures: list[str]
    split: ValidationSplit
    options: FinetuneOptions = field(default_factory=FinetuneOptions)
    axis: Axis = Axis.AXIAL
    intensity: str = AUTO_PRESET
    device: str = "auto"
    overwrite: bool = False
    data: list[dict[str, str]] = field(default_factory=list)  # what each case is, for the provenance file


@dataclass
class FineTuned:
    """Result of FineTune: the new model's name (``registry.get_spec`` finds it) and its validation."""

    name: str
    report: FinetuneReport


@dataclass
class Register:
    """Register ``moving`` to ``fixed`` through the same structure's mask in each (SimpleITK; no model).

    Result: a ``research.registration.RegistrationResult``; PROGRESS is (optimiser iteration, 0)
    with the stage as the message's text.
    """

    fixed: Volume
    fixed_mask: np.ndarray
    moving: Volume
    moving_mask: np.ndarray
    options: RegistrationOptions = field(default_factory=RegistrationOptions)


ResearchRequest = SegmentEverything | ComputePriorMaps | FineTune | Register
RESEARCH_REQUESTS = (SegmentEverything, ComputePriorMaps, FineTune, Register)
