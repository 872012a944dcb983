"""How the inference thread serves the research requests (see ``protocol.research``): registered
with the worker as jobs when this module is imported."""

from __future__ import annotations

from ..cancel import CancelToken, Progress
from ..errors import ModelUnavailableError, SAMSegmentError
from ..predictor import VolumePredictor
from ..protocol.requests import LoadModel
from ..protocol.research import (
    ComputePriorMaps,
    FineTune,
    FineTuned,
    PriorMapsReady,
    Register,
    SegmentEverything,
)
from ..research.everything import EverythingResult, segment_everything
from ..research.finetune import check_new_name, finetune_on_volumes, save_finetuned
from ..research.finetune.provenance import finetune_provenance
from ..research.prior_maps import volume_prior_maps, write_prior_maps
from ..research.registration import RegistrationResult, register_with_masks
from ..volume import Axis, Volume
from .jobs import register_job
from .sam2_sessions import SAM2Model
from .session import InferenceSession


def _image_predictor(
    session: InferenceSession, volume: Volume | None, intensity: str, volume_key: str | None
) -> VolumePredictor:
    """The session's predictor on its current volume, or a predictor of the session's model (sharing
    its embedding cache) on ``volume``."""
    if isinstance(session.model, SAM2Model):
        raise ModelUnavailableError(
            f"{session.model.spec.name} is a SAM 2 model, which segments from prompts only; choose SAM, "
            "HQ-SAM or LiteMedSAM for automatic segmentation."
        )
    if volume is None:
        if session.predictor is None:
            missing = "model" if session.model is None else "volume"
            raise SAMSegmentError(f"No {missing} is loaded yet: choose a {missing} first.")
        return session.predictor
    if session.model is None:
        raise SAMSegmentError("No model is loaded yet: choose a model first.")
    predictor = VolumePredictor(session.model, session.cache)
    predictor.set_volume(volume, intensity, volume_key)
    return predictor


def _segment_everything(
    session: InferenceSession, request: SegmentEverything, cancel: CancelToken, report: Progress
) -> EverythingResult:
    predictor = _image_predictor(session, request.volume, request.intensity, request.volume_key)
    return segment_everything(
        predictor,
        Axis(request.axis),
        request.first,
        request.last,
        request.options,
        request.link_iou,
        progress=report,
        cancel=cancel,
    )


def _prior_maps(
    session: InferenceSession, request: ComputePriorMaps, cancel: CancelToken, report: Progress
) -> PriorMapsReady:
    predictor = _image_predictor(session, request.volume, request.intensity, request.volume_key)
    volume = predictor.require_volume()
    axis = Axis(request.axis)
    slices = list(range(volume.slice_count(axis)) if request.slices is None else request.slices)
    if not slices:
        raise SAMSegmentError("Choose at least one slice for the prior maps.")
    for index in slices:
        volume.check_slice_index(axis, index)
    maps = volume_prior_maps(
        predictor,
        axis,
        slices,
        request.options,
        request.quality,
        request.combine,
        progress=report,
        cancel=cancel,
    )
    written = {}
    if request.output_folder is not None:
        written = write_prior_maps(request.output_folder, volume, predictor.require_mapping().apply(volume.array), maps)
    return PriorMapsReady(maps, written)


def _fine_tune(session: InferenceSession, request: FineTune, cancel: CancelToken, report: Progress) -> FineTuned:
    check_new_name(request.name, session.store, request.overwrite)  # before any slow work
    if not request.cases:
        raise SAMSegmentError("Choose at least one labelled image to fine-tune on.")
    # A copy of its own: training changes the model in place, and the loaded one must stay as it was.
    model = session.fresh_model(LoadModel(request.base_model, request.device))
    if isinstance(model, SAM2Model):
        raise ModelUnavailableError(
            f"{request.base_model} is a SAM 2 model; fine-tuning works with SAM, HQ-SAM and LiteMedSAM models."
        )
    outcome = finetune_on_volumes(
        model,
        request.cases,
        request.structures,
        request.split,
        request.options,
        Axis(request.axis),
        request.intensity,
        progress=report,
        cancel=cancel,
    )
    provenance = finetune_provenance(
        outcome, request.data, request.structures, request.split, request.options, request.axis, request.intensity
    )
    spec = save_finetuned(model, request.name, provenance, session.store, request.overwrite)
    return FineTuned(spec.name, outcome.report)


def _register(
    _session: InferenceSession, request: Register, cancel: CancelToken, report: Progress
) -> RegistrationResult:
    # Registration needs no model: the session is unused.
    return register_with_masks(
        request.fixed,
        request.fixed_mask,
        request.moving,
        request.moving_mask,
        request.options,
        progress=report,
        cancel=cancel,
    )


# Each raises CancelledError once ``cancel`` is set (between slices, steps or iterations).
register_job(SegmentEverything, _segment_everything)
register_job(ComputePriorMaps, _prior_maps)
register_job(FineTune, _fine_tune)
register_job(Register, _register)
