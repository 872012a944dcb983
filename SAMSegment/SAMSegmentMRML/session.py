"""The effect's GUI-thread session on one segmentation grid: prompts, previews, Apply and
propagation, talking to the persistent inference worker by request ids.

Everything here runs on the GUI thread (the only thread that touches MRML/VTK); the worker
gets numpy copies and its answers are applied in ``processMessages``, which the effect calls
from a timer. Answers the session no longer wants are dropped (see RequestTracker).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

import slicer
from SAMSegmentLib.volume import Axis, put_slice

from .everything_writer import addEverythingSegments
from .geometry import arrayShape, geometryOf, volumeFromOrientedImage
from .preview import PreviewSegmentation
from .prompt_session import PromptSession
from .propagation_collector import PropagationCollector, summary
from .request_tracker import RequestTracker
from .segment_writer import MaskWrite, SegmentEditing, writeSegmentMasks
from .slice_views import SlicePosition

if TYPE_CHECKING:  # the worker imports torch, which is installed on first use
    from SAMSegmentLib.worker import InferenceWorker

PREVIEW, PROPAGATION, MODEL, VOLUME, DOWNLOAD = "preview", "propagation", "model", "volume", "download"
EVERYTHING = "everything"


@dataclass(frozen=True)
class Notice:
    """Something the effect should show: ``kind`` is one of "status", "progress", "error",
    "out_of_memory", "model", "preview", "written", "download" (progress in bytes), "downloaded"."""

    kind: str
    text: str = ""
    progress: tuple[int, int] | None = None


@dataclass
class _Preview:
    revision: int
    axis: Axis
    index: int
    mask: np.ndarray  # bool [y, x] on the prompted slice


class EditorSession:
    def __init__(
        self,
        worker: InferenceWorker,
        scene: slicer.vtkMRMLScene,
        segmentationNode: slicer.vtkMRMLSegmentationNode,
        geometry: slicer.vtkOrientedImageData,
        editing: SegmentEditing,
        modality: str = "",
    ) -> None:
        """``geometry`` is the source volume on the segmentation's grid (the Segment Editor's
        aligned source volume); its voxels and grid are copied once, so the session keeps working
        on them whatever the editor later does with that image."""
        self.worker = worker
        self.segmentationNode = segmentationNode
        self.volume = volumeFromOrientedImage(geometry, modality)
        self.geometry = geometryOf(geometry)
        self.editing = editing
        self.prompts = PromptSession()
        self.preview = PreviewSegmentation(scene, segmentationNode)
        self.previewColor = (1.0, 1.0, 0.0)
        self.tracker = RequestTracker()
        self.modelReady = False
        self._lastPreview: _Preview | None = None

    # ----- model and volume -----

    def loadModel(self, modelName: str, device: str = "auto") -> None:
        from SAMSegmentLib.worker import LoadModel

        self.modelReady = False
        self.tracker.track(self.worker.submit(LoadModel(modelName, device)), MODEL)

    def setVolume(
        self,
        preset: str,
        volumeKey: str | None = None,
        focus: SlicePosition | None = None,
        memoryPolicy: str = "recent",
    ) -> None:
        """Send the volume (a copy) to the worker; ``focus`` starts embedding the slice in view.
        ``memoryPolicy`` ("recent" or "self-sorting") is what SAM 2 models remember; sending it
        starts their memory over. Other models ignore it."""
        from SAMSegmentLib.worker import SetVolume

        focusSlice = (focus.axis, focus.index) if focus is not None else None
        request = SetVolume(self.volume, preset, volumeKey, focusSlice, memoryPolicy)
        self.tracker.track(self.worker.submit(request), VOLUME)
        self._dropPreview()

    def download(self, modelName: str) -> None:
        """Download a model's checkpoint in the background (resumable, verified)."""
        from SAMSegmentLib.worker import Download

        self.tracker.track(self.worker.submit(Download(modelName)), DOWNLOAD)

    def cancelDownload(self) -> None:
        requestId = self.tracker.pending(DOWNLOAD)
        if requestId is not None:
            self.worker.cancel(requestId)

    # ----- prompts -----

    def addPoint(self, position: SlicePosition, positive: bool) -> None:
        self._checkPosition(position)
        self.prompts.addPoint(position, positive)
        self._promptsChanged()

    def setBox(self, corner: SlicePosition, oppositeCorner: SlicePosition) -> None:
        self._checkPosition(corner)
        self.prompts.setBox(corner, oppositeCorner)
        self._promptsChanged()

    def removePromptAt(self, position: SlicePosition, radius: float) -> bool:
        removed = self.prompts.removeAt(position, radius)
        if removed:
            self._promptsChanged()
        return removed

    def removeLastPrompt(self) -> bool:
        removed = self.prompts.removeLast()
        if removed:
            self._promptsChanged()
        return removed

    def clearPrompts(self) -> None:
        self.prompts.clear()
        self._dropPreview()

    def _checkPosition(self, position: SlicePosition) -> None:
        count = self.volume.slice_count(position.axis)
        if not 0 <= position.index < count:
            raise ValueError(f"Slice {position.index} is outside the volume (0 to {count - 1}).")

    def _promptsChanged(self) -> None:
        from SAMSegmentLib.worker import Predict

        if self.prompts.empty:
            self._dropPreview()
            return
        # SAM 2 models remember per segment: a preview after a propagation corrects that segment.
        segmentID = self.editing.selectedSegmentID()
        request = Predict(self.prompts.axis, self.prompts.index, self.prompts.enginePrompts(), object_id=segmentID)
        self.tracker.track(self.worker.submit(request), PREVIEW, self.prompts.revision)

    def _dropPreview(self) -> None:
        pending = self.tracker.forget(PREVIEW)
        if pending is not None:
            self.worker.cancel(pending)
        self._lastPreview = None
        self.preview.clear()

    # ----- results -----

    @property
    def canApply(self) -> bool:
        """True when the preview shown is the answer to the current prompts."""
        return self._lastPreview is not None and self._lastPreview.revision == self.prompts.revision

    def apply(self, segmentID: str) -> None:
        """Write the preview into ``segmentID`` on the prompted slice (one undo step), then start over."""
        if not self.canApply:
            raise ValueError("There is no up-to-date preview to apply yet: wait for it to appear.")
        preview = self._lastPreview
        mask = np.zeros(arrayShape(self.geometry), bool)
        put_slice(mask, preview.axis, preview.index, preview.mask)
        writeSegmentMasks(
            self.editing,
            self.segmentationNode,
            self.geometry,
            [MaskWrite(segmentID, mask, preview.axis, [preview.index])],
        )
        self.clearPrompts()

    def propagate(
        self, segmentID: str, direction: str = "both", sliceRange: tuple[int, int] | None = None, stopRule: Any = None
    ) -> None:
        """Propagate the current prompts from their slice through the volume into ``segmentID``."""
        from SAMSegmentLib.propagation import Direction, ObjectPrompts, PropagationRequest
        from SAMSegmentLib.worker import Propagate

        if self.prompts.empty:
            raise ValueError("Place prompts on a slice before propagating.")
        if self.tracker.pending(PROPAGATION) is not None:
            raise ValueError("A propagation is already running: wait for it or cancel it.")
        request = PropagationRequest(
            self.prompts.axis,
            self.prompts.index,
            [ObjectPrompts(segmentID, self.prompts.enginePrompts())],
            Direction(direction),
            sliceRange,
        )
        request.bounds(self.volume.slice_count(request.axis))  # a seed outside the range fails here, not later
        collector = PropagationCollector(request.axis, self.volume.array.shape)
        self.tracker.track(self.worker.submit(Propagate(request, stopRule)), PROPAGATION, collector)
        self._dropPreview()

    @property
    def propagating(self) -> bool:
        return self.tracker.pending(PROPAGATION) is not None

    def cancelPropagation(self) -> None:
        """Stop before the next slice; the finished slices are still written when the worker answers."""
        requestId = self.tracker.pending(PROPAGATION)
        if requestId is not None:
            self.worker.cancel(requestId)

    def segmentEverything(self, axis: Axis, index: int, options: Any = None) -> None:
        """Find every structure on slice ``index`` along ``axis`` and add each as a new segment (one
        undo step); ``options`` is a ``research.automatic.GridOptions`` (the default when None)."""
        from SAMSegmentLib.worker import SegmentEverything

        count = self.volume.slice_count(axis)
        if not 0 <= index < count:
            raise ValueError(f"Slice {index} is outside the volume (0 to {count - 1}).")
        if self.segmentingEverything:
            raise ValueError("Segment everything is already running: wait for it or cancel it.")
        request = SegmentEverything(axis, index) if options is None else SegmentEverything(axis, index, options=options)
        self.tracker.track(self.worker.submit(request), EVERYTHING)

    @property
    def segmentingEverything(self) -> bool:
        return self.tracker.pending(EVERYTHING) is not None

    def cancelEverything(self) -> None:
        requestId = self.tracker.pending(EVERYTHING)
        if requestId is not None:
            self.worker.cancel(requestId)

    def processMessages(self) -> list[Notice]:
        """Apply every answer the worker has for this session; what to show the user."""
        notices: list[Notice] = []
        for tracked, message in self.tracker.wanted(self.worker.poll()):
            notices.extend(self._handle(tracked.purpose, tracked.context, message))
        return notices

    def _handle(self, purpose: str, context: Any, message: Any) -> list[Notice]:
        kind = message.kind.value
        if kind in ("error", "out_of_memory"):
            if purpose == MODEL:
                self.modelReady = False
            return [Notice(kind, message.text)]
        if purpose == MODEL and kind == "result":
            self.modelReady = True
            return [Notice("model", f"{message.value.spec.name} is ready on {message.value.device}.")]
        if purpose == DOWNLOAD:
            if kind == "progress":
                return [Notice("download", progress=message.value)]
            if kind == "result":
                return [Notice("downloaded", f"Saved {message.value}.")]
            return [Notice("status", "Download cancelled; it resumes where it stopped next time.")]
        if purpose == PREVIEW and kind == "result":
            return self._showPreview(context, message.value)
        if purpose == PROPAGATION:
            return self._propagationMessage(context, message)
        if purpose == EVERYTHING:
            return self._everythingMessage(message)
        return []

    def _everythingMessage(self, message: Any) -> list[Notice]:
        kind = message.kind.value
        if kind == "progress":
            return [Notice("progress", progress=message.value)]
        if kind != "result":
            return [Notice("status", message.text)]
        added = addEverythingSegments(self.segmentationNode, self.geometry, message.value, self.editing)
        if not added:
            return [Notice("written", "No structure was found on this slice; nothing was added.")]
        return [Notice("written", f"Added {len(added)} segments, one per structure found.")]

    def _showPreview(self, revision: int, preview: Any) -> list[Notice]:
        mask2d = np.asarray(preview.prediction.mask, bool)
        self._lastPreview = _Preview(revision, preview.axis, preview.index, mask2d)
        volumeMask = np.zeros(arrayShape(self.geometry), bool)
        put_slice(volumeMask, preview.axis, preview.index, mask2d)
        self.preview.show(self.geometry, volumeMask, self.previewColor)
        return [Notice("preview", f"Predicted quality {preview.prediction.score:.2f}.")]

    def _propagationMessage(self, collector: PropagationCollector, message: Any) -> list[Notice]:
        kind = message.kind.value
        if kind == "slice":
            collector.addSlice(message.value)
            region = np.zeros(collector.preview.shape, bool)
            put_slice(region, collector.axis, message.value.index, np.ones(message.value.mask.shape, bool))
            self.preview.merge(self.geometry, collector.preview, region, self.previewColor)
            return []
        if kind == "progress":
            collector.setProgress(*message.value)
            return [Notice("progress", progress=message.value)]
        self.preview.clear()
        if message.value is None:  # cancelled before it started
            return [Notice("status", "Propagation cancelled before any slice was done; nothing was written.")]
        writeSegmentMasks(self.editing, self.segmentationNode, self.geometry, collector.maskWrites(message.value))
        self.clearPrompts()
        return [Notice("written", summary(message.value))]

    def close(self) -> None:
        """Stop wanting every answer (cancelling the running ones) and remove the preview."""
        for requestId in self.tracker.forgetAll():
            self.worker.cancel(requestId)
        self.preview.clear()
