"""The engine in three calls: open a volume, prompt a slice, propagate through the volume.

This is the documented surface of ``SAMSegmentLib`` (as ``SamPredictor`` is of
``segment_anything``); the CLI, the evaluation and the engine service's worker are built on the
same pieces. Any registered model works: SAM 2 family models keep a memory session per slice
axis, the others carry each slice's mask to the next as its prompt.

    segmenter = Segmenter.open("litemedsam")
    segmenter.set_volume(read_volume("ct.nii.gz"))
    seed = segmenter.segment_slice(Axis.AXIAL, 40, Prompts(box=(120, 80, 190, 150)))
    result = segmenter.propagate(Axis.AXIAL, 40, Prompts(box=(120, 80, 190, 150)))
    liver = result.objects[SINGLE_OBJECT].mask  # bool, shaped like the volume's array
"""

from __future__ import annotations

from pathlib import Path

from .backends import open_backend
from .cancel import CancelToken
from .device import select_device
from .errors import PromptError, SAMSegmentError
from .intensity import AUTO_PRESET, IntensityMapping
from .models import PromptableModel, load_model
from .prediction import Prediction
from .predictor import VolumePredictor
from .prompts import Prompts
from .propagation import Direction, ObjectPrompts, PropagationRequest, PropagationResult
from .propagation.factory import make_propagator
from .propagation.sam2 import MemoryPolicy, SAM2VolumeSession, open_sam2_session
from .propagation.types import Progress, SliceResult
from .registry import Family, ModelSpec, get_spec
from .volume import Axis, Volume

# The object id of a propagation started from one prompt set.
SINGLE_OBJECT = "object"


class Segmenter:
    """One model on one volume at a time.

    Arrays follow :mod:`SAMSegmentLib.volume`: a volume is ``[k, j, i]`` (slice, row, column), a
    slice's mask is ``(rows, columns)`` of that slice, and prompts are slice pixel positions
    ``(x, y)`` = (column, row), box corners inclusive.
    """

    def __init__(
        self,
        spec: ModelSpec,
        device: str = "auto",
        checkpoint: Path | None = None,
        backend: str = "auto",
        memory_policy: MemoryPolicy | str | None = None,
    ) -> None:
        """``backend``: ``auto`` runs ONNX Runtime where it is installed and fits the device, else
        torch. ``memory_policy`` (SAM 2 family only): which slices the model remembers while
        propagating, SAM 2's own ``recent`` by default."""
        if memory_policy is not None and spec.family is not Family.SAM2:
            raise SAMSegmentError(f"{spec.name} has no memory: a memory policy applies to SAM 2 models only.")
        self.spec = spec
        self.device = select_device(device)
        self.checkpoint = checkpoint
        self.backend = backend
        self.memory_policy = MemoryPolicy.RECENT if memory_policy is None else memory_policy
        self._model: PromptableModel | None = None
        self._predictor: VolumePredictor | None = None
        self._sam2: dict[Axis, SAM2VolumeSession] = {}
        self._volume: Volume | None = None
        self._intensity: IntensityMapping | str = AUTO_PRESET

    @classmethod
    def open(cls, model: str = "litemedsam", device: str = "auto", checkpoint: Path | None = None) -> Segmenter:
        """A segmenter for the registered model ``model`` on ``device`` (``auto``: CUDA, then MPS,
        then the CPU); its weights come from ``checkpoint`` or the checkpoint store (downloaded
        and verified on first use)."""
        return cls(get_spec(model), device, checkpoint)

    @classmethod
    def with_model(cls, model: PromptableModel) -> Segmenter:
        """A segmenter around a model already loaded (a fine-tuned network wrapped by
        :func:`SAMSegmentLib.models.wrap_network`, say)."""
        segmenter = cls(model.spec, str(model.device))
        segmenter._model = model
        return segmenter

    def set_volume(self, volume: Volume, intensity: IntensityMapping | str = AUTO_PRESET) -> None:
        """Segment ``volume`` from now on. ``intensity`` is a preset name (see
        :data:`SAMSegmentLib.intensity.PRESETS`) or a mapping of voxel values onto [0, 1]."""
        self._volume, self._intensity = volume, intensity
        self._sam2.clear()
        if self.spec.family is Family.SAM2:
            return
        if self._model is None:
            self._model = open_backend(load_model(self.spec, self.device, checkpoint=self.checkpoint), self.backend)
        self._predictor = VolumePredictor(self._model)
        self._predictor.set_volume(volume, intensity)

    def segment_slice(self, axis: Axis, index: int, prompts: Prompts) -> Prediction | SliceResult:
        """The mask of slice ``index`` along ``axis`` from ``prompts``: ``.mask`` is bool
        ``(rows, columns)``, ``.score`` the model's predicted IoU."""
        segmenter = self.segmenter_for(axis)
        prompts.validate(self._require_volume().slice_shape(axis), self.spec)
        if isinstance(segmenter, SAM2VolumeSession):
            return segmenter.add_prompts(index, SINGLE_OBJECT, prompts)
        return segmenter.predict(axis, index, prompts)

    def propagate(
        self,
        axis: Axis,
        index: int,
        prompts: Prompts,
        direction: Direction = Direction.BOTH,
        slice_range: tuple[int, int] | None = None,
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
    ) -> PropagationResult:
        """Segment ``prompts`` on slice ``index`` and carry the mask slice by slice along ``axis``
        until the structure ends (or ``slice_range``, inclusive, ends). The 3D mask is
        ``result.objects[SINGLE_OBJECT].mask``, bool and shaped like the volume's array; each
        direction's stop and its reason are in ``.stops``."""
        prompts.validate(self._require_volume().slice_shape(axis), self.spec)
        request = PropagationRequest(axis, index, [ObjectPrompts(SINGLE_OBJECT, prompts)], direction, slice_range)
        return self.propagate_request(request, progress, cancel)

    def propagate_request(
        self, request: PropagationRequest, progress: Progress | None = None, cancel: CancelToken | None = None
    ) -> PropagationResult:
        """:meth:`propagate` for several objects at once, each with its prompts on the seed slice."""
        try:
            request.bounds(self._require_volume().slice_count(request.axis))
        except ValueError as error:
            raise PromptError(f"Slice {request.seed_index}, range {request.slice_range}: {error}") from None
        segmenter = self.segmenter_for(request.axis)
        return make_propagator(segmenter, request, None, cancel or CancelToken(), progress).run()

    def segmenter_for(self, axis: Axis) -> VolumePredictor | SAM2VolumeSession:
        """What segments slices along ``axis``: the volume's predictor, or a SAM 2 session on that axis."""
        volume = self._require_volume()
        if self.spec.family is not Family.SAM2:
            assert self._predictor is not None, "set_volume makes the predictor"
            return self._predictor
        if axis not in self._sam2:
            self._sam2[axis] = open_sam2_session(
                self.spec, volume, axis, self.device, self._intensity, self.memory_policy, self.checkpoint
            )
        return self._sam2[axis]

    def _require_volume(self) -> Volume:
        if self._volume is None:
            raise SAMSegmentError("No volume is open: call set_volume() first.")
        return self._volume
