"""A SAM 2 session on one volume along one axis: prompts, propagations, and the memory between them.

The GUI keeps one session while the user works: prompts on a slice, a propagation, a
correction on any slice (a positive or negative point, a new box), another propagation from
there, and so on. Everything SAM 2 computed (every slice's mask and memory) stays in the
session's upstream inference state, so a correction is propagated with the memory of the
earlier runs. A session is used from one thread at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import PromptError
from ...intensity import (
    AUTO_PRESET,
    IntensityMapping,
    auto_started_on_ct,
    ct_auto_preset,
    mapping_for,
    prompted_values,
    widened_to_prompt,
)
from ...prompts import Prompts
from ...registry import ModelSpec
from ...volume import Axis, Volume
from ..types import CancelToken, Direction, Progress, PropagationRequest, SliceResult
from .frames import VolumeFrames
from .memory_bank import MEMORY_BANK_KEY, PREDICTED_IOU_KEY, SelfSortingMemoryBank, SelfSortingSettings
from .policy import MemoryPolicy
from .propagation import SAM2Propagation
from .stop_rule import SAM2StopRule

if TYPE_CHECKING:
    from .upstream import VolumeVideoPredictor


class SAM2VolumeSession:
    """Prompts and propagations of any number of objects with one SAM 2 model.

    ``predictor`` must come from ``loading.load_sam2_predictor`` (or ``build_sam2_predictor``):
    a ``VolumeVideoPredictor`` that treats every prompted slice as a conditioning slice, so a
    corrected slice keeps its correction when propagation passes it again.
    """

    def __init__(
        self,
        predictor: VolumeVideoPredictor,
        spec: ModelSpec,
        volume: Volume,
        axis: Axis,
        intensity: IntensityMapping | str = AUTO_PRESET,
        memory_policy: MemoryPolicy | str = MemoryPolicy.RECENT,
        bank_settings: SelfSortingSettings | None = None,
    ) -> None:
        if not predictor.add_all_frames_to_correct_as_cond:
            raise ValueError(
                "The SAM 2 predictor must treat corrected slices as prompted slices; "
                "build it with load_sam2_predictor()."
            )
        self.memory_policy = MemoryPolicy(memory_policy)
        if self.memory_policy is MemoryPolicy.SELF_SORTING and predictor.memory_temporal_stride_for_eval != 1:
            raise ValueError("The self-sorting memory bank needs a memory stride of 1 (the SAM 2.1 configs' value).")
        self.predictor = predictor
        self.spec = spec
        self.volume = volume
        self.axis = Axis(axis)
        mapping = intensity if isinstance(intensity, IntensityMapping) else mapping_for(volume, intensity)
        self.frames = VolumeFrames(volume, self.axis, mapping, predictor.image_size)
        # ``auto`` is decided at the session's first prompt, from the voxels under it, and kept.
        self._intensity_undecided = intensity == AUTO_PRESET
        self.bank_settings = bank_settings or SelfSortingSettings()
        from .upstream import UpstreamState  # sam2 is importable: the predictor exists

        self._upstream = UpstreamState(self.frames, predictor.device)
        self.state = self._upstream.state  # what sam2's public predictor methods take
        self.last_prompted_index: int | None = None

    @property
    def object_ids(self) -> list[str]:
        return self._upstream.object_ids()

    def add_prompts(self, index: int, object_id: str, prompts: Prompts) -> SliceResult:
        """Segment ``object_id`` on slice ``index`` from ``prompts``, which replace that object's
        earlier prompts on that slice (send all of them). On a slice propagation has already
        reached, this corrects the propagated mask, using the memory of the other slices."""
        self._check_prompts(index, prompts)
        if self._intensity_undecided:
            self._decide_intensity(index, prompts)
        object_index = self._upstream.object_index(self.predictor, object_id)
        if self.memory_policy is MemoryPolicy.SELF_SORTING:
            outputs = self._upstream.object_outputs(object_index)
            outputs.setdefault(MEMORY_BANK_KEY, SelfSortingMemoryBank(self.bank_settings))
        _, object_ids, masks = self.predictor.add_new_points_or_box(
            self.state,
            frame_idx=index,
            obj_id=object_id,
            points=prompts.points_array(),
            labels=prompts.labels_array(),
            box=prompts.clipped_box(self.frames.slice_shape),
            clear_old_points=True,
        )
        self.last_prompted_index = index
        output = self._upstream.prompted_output(object_index, index)
        mask = (masks[object_ids.index(object_id), 0] > 0).cpu().numpy()
        return SliceResult(object_id, index, mask, float(output[PREDICTED_IOU_KEY].reshape(-1)[0]))

    def propagate(
        self,
        direction: Direction = Direction.BOTH,
        slice_range: tuple[int, int] | None = None,
        start: int | None = None,
        stop_rule: SAM2StopRule | None = None,
        cancel: CancelToken | None = None,
        progress: Progress | None = None,
    ) -> SAM2Propagation:
        """Propagate every object from slice ``start`` (default: the last prompted slice)."""
        if not self.object_ids:
            raise PromptError("Add prompts on a slice before propagating.")
        start = self.last_prompted_index if start is None else start
        assert start is not None, "object_ids is filled together with last_prompted_index"
        # The request carries no prompts: they are already in the session's state.
        request = PropagationRequest(self.axis, start, [], Direction(direction), slice_range)
        return SAM2Propagation(self, request, stop_rule, cancel, progress)

    def propagate_request(
        self,
        request: PropagationRequest,
        stop_rule: SAM2StopRule | None = None,
        cancel: CancelToken | None = None,
        progress: Progress | None = None,
    ) -> SAM2Propagation:
        """Add the request's prompts on its seed slice, then propagate from there."""
        if Axis(request.axis) is not self.axis:
            raise ValueError(f"This session works along the {self.axis.value} axis, not {Axis(request.axis).value}.")
        for item in request.objects:  # all checked before any is added, so bad input changes nothing
            self._check_prompts(request.seed_index, item.prompts)
        for item in request.objects:
            self.add_prompts(request.seed_index, item.object_id, item.prompts)
        return self.propagate(request.direction, request.slice_range, request.seed_index, stop_rule, cancel, progress)

    def _decide_intensity(self, index: int, prompts: Prompts) -> None:
        """``auto`` from the voxels under the first prompt, as ``VolumePredictor.choose_intensity`` decides
        it (no slice is encoded yet), from the mapping ``auto`` started with. The bone window, which the
        predictor offers the model for bright prompts on a CT, is not tried: SAM 2 would encode the
        slice twice and keep both in its state."""
        values = prompted_values(self.volume.slice_2d(self.axis, index), prompts, self.volume.slice_spacing(self.axis))
        start = self.frames.mapping
        self.frames.mapping = (
            mapping_for(self.volume, ct_auto_preset(values))
            if auto_started_on_ct(start)
            else widened_to_prompt(start, values)
        )
        self._intensity_undecided = False

    def frame_output(self, object_id: str, index: int) -> dict[str, Any] | None:
        """SAM 2's stored output (mask logits, memory, scores) of an object on a slice, if any."""
        return self._upstream.frame_output(object_id, index)

    def clear_prompts(self, index: int, object_id: str) -> None:
        """Remove ``object_id``'s prompts and tentative output on slice ``index``."""
        self.predictor.clear_all_prompts_in_frame(self.state, index, object_id, need_output=False)

    def reset(self) -> None:
        """Forget every object, prompt and memory, keeping the volume."""
        self.predictor.reset_state(self.state)
        self.last_prompted_index = None

    def _check_prompts(self, index: int, prompts: Prompts) -> None:
        self.volume.check_slice_index(self.axis, index)
        prompts.validate(self.frames.slice_shape, self.spec)
