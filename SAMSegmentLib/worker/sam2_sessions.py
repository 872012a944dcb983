"""SAM 2 family models (SAM 2.1, MedSAM2) in the worker: previews and propagations that share memory.

The model is loaded once and kept across volumes. On the current volume the worker keeps one
``SAM2VolumeSession`` per object (the segment a Predict or Propagate names) and axis, opened on
first use, so a correction previewed on any slice after a propagation is decoded with that
propagation's memory, and the next propagation keeps it. A session per object rather than one
for all: SAM 2 keeps memory per object anyway, and propagating one segment then neither
recomputes nor reports the others (the effect writes only the selected segment). A request
naming several objects gets one session for that group.

A preview is tentative: it joins the object's memory when a propagation starts from its slice.
The effect shows prompts on one slice only, and prompts it no longer shows must not steer
SAM 2, so a preview or propagation on another slice first takes the tentative prompts back: a
slice an earlier propagation started from gets the prompts of that propagation again, any
other slice loses its prompts.

No prefetch: a session encodes each slice when it reaches it and keeps only the last slice's
features, so features computed ahead of time would not be used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from ..errors import SAMSegmentError
from ..intensity import IntensityMapping
from ..prompts import Prompts
from ..propagation import CancelToken, SliceResult
from ..propagation.factory import make_propagator
from ..propagation.sam2 import MemoryPolicy, SAM2VolumeSession
from ..propagation.types import Progress, Propagator
from ..protocol.requests import Predict, Propagate
from ..registry import ModelSpec
from ..volume import Axis, Volume

if TYPE_CHECKING:
    from ..propagation.sam2.predictor import VolumeVideoPredictor


@dataclass(frozen=True)
class SAM2Model:
    """A loaded SAM 2 family model: what a worker loader returns for a SAM 2 spec."""

    spec: ModelSpec
    predictor: VolumeVideoPredictor  # from propagation.sam2.load_sam2_predictor

    @property
    def device(self) -> torch.device:
        return self.predictor.device


def parse_memory_policy(value: MemoryPolicy | str) -> MemoryPolicy:
    try:
        return MemoryPolicy(value)
    except ValueError:
        choices = ", ".join(policy.value for policy in MemoryPolicy)
        raise SAMSegmentError(f"Unknown memory policy '{value}': choose one of {choices}.") from None


@dataclass
class _ObjectSession:
    session: SAM2VolumeSession
    # Slice -> object -> prompts of every propagation started in this session, by seed slice.
    committed: dict[int, dict[str, Prompts]] = field(default_factory=dict)
    tentative: int | None = None  # slice of the last preview, until a propagation starts there
    previewed: dict[str, Prompts] = field(default_factory=dict)  # object -> prompts on that slice


class SAM2Sessions:
    """The SAM 2 sessions of one model on one volume; used by the worker thread only."""

    def __init__(
        self, model: SAM2Model, volume: Volume, intensity: IntensityMapping | str, memory_policy: MemoryPolicy
    ) -> None:
        self.model = model
        self.volume = volume
        self.intensity = intensity  # ``auto``: each session decides it at its first prompt
        self.memory_policy = memory_policy
        self._sessions: dict[tuple[Axis, frozenset[str]], _ObjectSession] = {}

    def preview(self, request: Predict) -> SliceResult:
        """The mask of ``request.object_id`` on the request's slice, decoded with its memory."""
        entry = self._entry(request.axis, [request.object_id])
        result = entry.session.add_prompts(request.index, request.object_id, request.prompts)
        self._take_back_tentative(entry, keep=request.index)
        entry.tentative = request.index
        entry.previewed[request.object_id] = request.prompts
        return result

    def propagator(self, request: Propagate, cancel: CancelToken, progress: Progress) -> Propagator:
        """Add the request's prompts on its seed slice (committing them) and propagate from there."""
        propagation = request.request
        seed = propagation.seed_index
        # Checked here because the session checks the range only after adding the prompts.
        try:
            propagation.bounds(self.volume.slice_count(propagation.axis))
        except ValueError as error:
            raise SAMSegmentError(str(error)) from error
        entry = self._entry(propagation.axis, [item.object_id for item in propagation.objects])
        # Prompts the last preview decoded are not added again: SAM 2 would refine that preview
        # with them, and the propagation would not start from the mask the user saw.
        shown = entry.previewed if entry.tentative == seed else {}
        new = [item for item in propagation.objects if shown.get(item.object_id) != item.prompts]
        propagator = make_propagator(
            entry.session, dataclasses.replace(propagation, objects=new), request.stop_rule, cancel, progress
        )
        self._take_back_tentative(entry, keep=seed)
        entry.committed.setdefault(seed, {}).update((item.object_id, item.prompts) for item in propagation.objects)
        return propagator

    def _entry(self, axis: Axis, object_ids: Sequence[str]) -> _ObjectSession:
        key = (Axis(axis), frozenset(object_ids))
        if key not in self._sessions:
            session = SAM2VolumeSession(
                self.model.predictor, self.model.spec, self.volume, key[0], self.intensity, self.memory_policy
            )
            self._sessions[key] = _ObjectSession(session)
        return self._sessions[key]

    def _take_back_tentative(self, entry: _ObjectSession, keep: int) -> None:
        """Undo the last preview unless it is on slice ``keep``; either way it is no longer tentative.

        Its outputs are still in upstream's temporary per-slice outputs (a propagation moves them
        into memory), so clearing the slice's prompts removes it without a trace."""
        index, entry.tentative, entry.previewed = entry.tentative, None, {}
        if index is None or index == keep:
            return
        session = entry.session
        committed = entry.committed.get(index, {})
        for object_id in session.object_ids:
            if object_id in committed:
                session.add_prompts(index, object_id, committed[object_id])
            else:
                session.clear_prompts(index, object_id)
