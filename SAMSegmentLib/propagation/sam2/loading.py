"""Build SAM 2 family models with the upstream ``sam2`` package and open sessions on volumes."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ...checkpoints import CheckpointStore, load_state_dict
from ...errors import CheckpointError, ModelUnavailableError
from ...intensity import AUTO_PRESET, IntensityMapping
from ...registry import Family, ModelSpec
from ...volume import Axis, Volume
from .memory_bank import SelfSortingSettings
from .policy import MemoryPolicy
from .session import SAM2VolumeSession

if TYPE_CHECKING:
    from .upstream import VolumeVideoPredictor

INSTALL_HINT = (
    "Install it with: SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2==1.1.0 "
    "(after torch; no wheel exists, and the CUDA extension is optional)"
)

# Configs named by the registry that upstream sam2 does not ship, as upstream config + changes.
# MedSAM2's sam2.1_hiera_t512.yaml (github.com/bowang-lab/MedSAM2, sam2/configs) differs from
# upstream's sam2.1_hiera_t.yaml only in image size 512 and the attention grid that follows.
DERIVED_CONFIGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "configs/sam2.1_hiera_t512.yaml": (
        "configs/sam2.1/sam2.1_hiera_t.yaml",
        (
            "++model.image_size=512",
            "++model.memory_attention.layer.self_attention.feat_sizes=[32,32]",
            "++model.memory_attention.layer.cross_attention.feat_sizes=[32,32]",
        ),
    ),
}

_PREDICTOR_OVERRIDES = (
    f"++model._target_={__package__}.upstream.VolumeVideoPredictor",
    # A corrected slice becomes a prompted (conditioning) slice: upstream propagation then
    # keeps its corrected mask and every later slice attends to it.
    "++model.add_all_frames_to_correct_as_cond=true",
)


def _import_sam2() -> None:
    try:
        importlib.import_module("sam2.build_sam")
    except ImportError as error:
        raise ModelUnavailableError(
            f"The SAM 2 models need the Python package 'sam2' ({error}). {INSTALL_HINT}"
        ) from error
    from .upstream import check_sam2_version

    check_sam2_version()


def build_sam2_predictor(config: str, device: torch.device, overrides: Sequence[str] = ()) -> VolumeVideoPredictor:
    """The untrained network of a sam2 Hydra ``config`` (plus Hydra ``overrides``) as our predictor."""
    _import_sam2()
    from sam2.build_sam import build_sam2_video_predictor

    base, derived = DERIVED_CONFIGS.get(config, (config, ()))
    extra = [*_PREDICTOR_OVERRIDES, *derived, *overrides]
    predictor = build_sam2_video_predictor(base, ckpt_path=None, device=str(device), hydra_overrides_extra=extra)
    if importlib.util.find_spec("sam2._C") is None:
        # Upstream fills small holes in masks with sam2's optional CUDA extension; installed
        # without it (as `make setup` does), it warns in every session and skips the step.
        predictor.fill_hole_area = 0
    return predictor


def load_sam2_predictor(
    spec: ModelSpec,
    device: torch.device,
    store: CheckpointStore | None = None,
    checkpoint: Path | None = None,
) -> VolumeVideoPredictor:
    """Build ``spec`` and load its verified weights (from ``checkpoint`` or the store)."""
    if spec.family is not Family.SAM2:
        raise ValueError(f"{spec.name} is a {spec.family.value} model, not a SAM 2 model.")
    _import_sam2()
    path = Path(checkpoint) if checkpoint is not None else (store or CheckpointStore()).path_for(spec)
    state = load_state_dict(path)  # before building: a wrong file fails fast and safely
    predictor = build_sam2_predictor(spec.architecture, device)
    if predictor.image_size != spec.input_size:
        raise ValueError(
            f"The {spec.architecture} config builds {predictor.image_size} px input; "
            f"{spec.name} expects {spec.input_size}."
        )
    try:
        missing, unexpected = predictor.load_state_dict(state, strict=False)
    except RuntimeError as error:  # same names, other shapes: another model size
        raise CheckpointError(f"{path} does not fit {spec.name}: {str(error).splitlines()[0]}") from error
    if missing or unexpected:
        raise CheckpointError(
            f"{path} is not a checkpoint of {spec.name}: {len(missing)} weights missing "
            f"(e.g. {sorted(missing)[:3]}), {len(unexpected)} unexpected (e.g. {sorted(unexpected)[:3]})."
        )
    return predictor.eval()


def open_sam2_session(
    spec: ModelSpec,
    volume: Volume,
    axis: Axis,
    device: torch.device,
    intensity: IntensityMapping | str = AUTO_PRESET,
    memory_policy: MemoryPolicy | str = MemoryPolicy.RECENT,
    checkpoint: Path | None = None,
    bank_settings: SelfSortingSettings | None = None,
    store: CheckpointStore | None = None,
) -> SAM2VolumeSession:
    """Load ``spec`` and open a session on ``volume`` along ``axis`` (the worker's and CLI's entry)."""
    predictor = load_sam2_predictor(spec, device, store, checkpoint)
    return SAM2VolumeSession(predictor, spec, volume, axis, intensity, memory_policy, bank_settings)
