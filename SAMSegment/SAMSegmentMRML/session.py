"""The effect's GUI-thread session on one segmentation grid: prompts, previews, Apply and
propagation, talking to the SAM engine by request ids.

Everything here runs on the GUI thread (the only thread that touches MRML/VTK). The engine runs
in its own process (``SAMSegmentLib.service``) and is reached through a client of the engine
protocol (``SAMSegmentLib.protocol``, no torch); its answers are applied in ``processMessages``,
which the effect calls from a timer and when the engine's socket has data. Answers the session
no longer wants are dropped (see RequestTracker). Each answer costs the GUI thread one slice of
work, whatever the volume's size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import slicer

from SAMSegmentLib.intensity import IntensityMapping
from SAMSegmentLib.propagation.types import Direction, ObjectPrompts, PropagationRequest
from SAMSegmentLib.protocol import (
    Download,
    LoadModel,
    MessageKind,
    Predict,
    Propagate,
    SegmentEverything,
    SetVolume,
    WorkerMessage,
)
from SAMSegmentLib.protocol.clients import Engine
from SAMSegmentLib.registry import ModelSpec, PromptKind
from SAMSegmentLib.volume import Axis, put_slice

from .everything_writer import addEverythingSegments
from .geometry import arrayShape, geometryOf, volumeFromOrientedImage
from .i18n import tr
from .preview import PreviewSegmentation
from .prompt_session import PromptSession
from .propagation_collector import PropagationCollector, summary
from .request_tracker import RequestTracker
from .segment_writer import MaskWrite, SegmentEditing, segmentMaskOnGrid, writeSegmentMasks
from .slice_views import SlicePosition

logger = logging.getLogger(__name__)


class Purpose(Enum):
    """What a request sent to the engine is for (see RequestTracker)."""

    PREVIEW = "preview"
    PROPAGATION = "propagation"
    MODEL = "model"
    VOLUME = "volume"
    DOWNLOAD = "download"
    EVERYTHING = "everything"


class NoticeKind(Enum):
    STATUS = "status"  # text for the status line
    PROGRESS = "progress"  # progress of a propagation or segment everything: (done, planned)
    ERROR = "error"
    OUT_OF_MEMORY = "out_of_memory"  # the effect may offer the CPU
    MODEL = "model"  # the model is ready
    PREVIEW = "preview"  # a new preview is shown
    WRITTEN = "written"  # the segmentation was changed (one undo step)
    DOWNLOAD = "download"  # download progress in bytes: (done, total)
    DOWNLOADED = "downloaded"


@dataclass(frozen=True)
class Notice:
    """Something the effect should show."""

    kind: NoticeKind
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
        worker: Engine,
        scene: slicer.vtkMRMLScene,
        segmentationNode: slicer.vtkMRMLSegmentationNode,
        geometry: slicer.vtkOrientedImageData,
        editing: SegmentEditing,
        modality: str = "",
    ) -> None:
        """``geometry`` is the source volume on the segmentation's grid (the Segment Editor's
        aligned source volume). Its grid is copied, so the session keeps working on it whatever the
        editor later does with that image; its voxels are not (a view, sent once to the engine):
        the effect starts a new session when the source volume or the grid changes."""
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
        self.modelDevice = ""  # where the engine runs the model ("cpu", "cuda:0", ...), once ready
        # The chosen model's, as the effect knows it before loading or the engine says once loaded
        # (None: not known, e.g. a model only a server has): what prompts it takes.
        self.modelSpec: ModelSpec | None = None
        self._lastPreview: _Preview | None = None
        self._closing = False
        # Propagated slices that arrived in the batch being processed, not yet shown, by propagation.
        self._unshownSlices: dict[int, tuple[PropagationCollector, set[int]]] = {}

    # ----- model and volume -----

    def loadModel(self, modelName: str, device: str = "auto") -> None:
        self.modelReady = False
        self.tracker.track(self.worker.submit(LoadModel(modelName, device)), Purpose.MODEL)

    def useModelSpec(self, spec: ModelSpec | None) -> list[Notice]:
        """Take ``spec`` as the chosen model's (None: not known). Clicks it cannot take are removed
        from the prompts, and the box left is segmented again, so no prompt stays on screen that the
        model would ignore or refuse on every preview."""
        self.modelSpec = spec
        if spec is None or spec.accepts(PromptKind.POINT):
            return []
        count = self.prompts.dropPoints()
        if not count:
            return []
        self._promptsChanged()
        return [
            Notice(
                NoticeKind.STATUS,
                tr("{model} takes only a box: {count} click(s) removed.").format(model=spec.name, count=count),
            )
        ]

    def setVolume(
        self,
        intensity: str | IntensityMapping,
        volumeKey: str | None = None,
        focus: SlicePosition | None = None,
        memoryPolicy: str = "recent",
    ) -> None:
        """Send the volume (a copy) to the worker; ``focus`` starts embedding the slice in view.
        ``intensity`` is an engine preset's name or a mapping (the displayed window, see display_intensity).
        ``memoryPolicy`` ("recent" or "self-sorting") is what SAM 2 models remember; sending it
        starts their memory over. Other models ignore it."""
        focusSlice = (focus.axis, focus.index) if focus is not None else None
        request = SetVolume(self.volume, intensity, volumeKey, focusSlice, memoryPolicy)
        self.tracker.track(self.worker.submit(request), Purpose.VOLUME)
        self._dropPreview()

    def download(self, modelName: str) -> None:
        """Download a model's checkpoint in the background (resumable, verified)."""
        self.tracker.track(self.worker.submit(Download(modelName)), Purpose.DOWNLOAD)

    def cancelDownload(self) -> None:
        requestId = self.tracker.pending(Purpose.DOWNLOAD)
        if requestId is not None:
            self.worker.cancel(requestId)

    # ----- prompts -----

    def addPoint(self, position: SlicePosition, positive: bool) -> None:
        """Add a click; refused (ValueError, prompts unchanged) where the model takes only a box, so a
        point that could never be segmented does not stay among the prompts and fail every preview."""
        self._checkPosition(position)
        if self.modelSpec is not None and not self.modelSpec.accepts(PromptKind.POINT):
            raise ValueError(
                tr("{model} takes only a box: drag a box around the structure instead of clicking.").format(
                    model=self.modelSpec.name
                )
            )
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

    def clearPrompts(self) -> None:
        self.prompts.clear()
        self._dropPreview()

    def _checkPosition(self, position: SlicePosition) -> None:
        count = self.volume.slice_count(position.axis)
        if not 0 <= position.index < count:
            raise ValueError(
                tr("Slice {index} is outside the volume (0 to {last}).").format(index=position.index, last=count - 1)
            )

    def _promptsChanged(self) -> None:
        if self.prompts.empty:
            self._dropPreview()
            return
        # SAM 2 models remember per segment: a preview after a propagation corrects that segment.
        segmentID = self.editing.editorNode().GetSelectedSegmentID() or ""
        request = Predict(
            self.prompts.axis, self.prompts.index, self.prompts.enginePrompts(), object_id=segmentID, logits=False
        )
        self.tracker.track(self.worker.submit(request), Purpose.PREVIEW, self.prompts.revision)

    def _dropPreview(self) -> None:
        pending = self.tracker.forget(Purpose.PREVIEW)
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
            raise ValueError(tr("There is no up-to-date preview to apply yet: wait for it to appear."))
        preview = self._lastPreview
        mask = np.zeros(arrayShape(self.geometry), bool)
        put_slice(mask, preview.axis, preview.index, preview.mask)
        writeSegmentMasks(
            self.editing,
            self.segmentationNode,
            self.geometry,
            [MaskWrite(segmentID, mask, preview.axis, [preview.index], self.prompts.clickedVoxels())],
        )
        self.clearPrompts()

    def propagate(
        self,
        segmentID: str,
        direction: str = "both",
        sliceRange: tuple[int, int] | None = None,
        stopRule: Any = None,
        keepSegmentedSlices: bool = False,
    ) -> tuple[int, int] | None:
        """Propagate the current prompts from their slice through the volume into ``segmentID``.
        With ``keepSegmentedSlices``, prompts on a slice the segment does not hold propagate only
        through the slices around it that it does not hold either (``PropagationRequest.filling_gap``).
        The range the propagation was kept to, or None when it may run to the volume's ends."""
        if self.prompts.empty:
            raise ValueError(tr("Place prompts on a slice before propagating."))
        if self.tracker.pending(Purpose.PROPAGATION) is not None:
            raise ValueError("A propagation is already running: wait for it or cancel it.")
        request = PropagationRequest(
            self.prompts.axis,
            self.prompts.index,
            [ObjectPrompts(segmentID, self.prompts.enginePrompts())],
            Direction(direction),
            sliceRange,
        )
        request.bounds(self.volume.slice_count(request.axis))  # a seed outside the range fails here, not later
        segment = self.segmentationNode.GetSegmentation().GetSegment(segmentID)
        if segment is None:
            raise ValueError(tr("The segmentation has no segment '{segment}'.").format(segment=segmentID))
        if keepSegmentedSlices:
            request = request.filling_gap(segmentMaskOnGrid(self.segmentationNode, segmentID, self.geometry))
        collector = PropagationCollector(
            request.axis,
            self.volume.array.shape,
            {segmentID: segment.GetName()},
            {segmentID: self.prompts.clickedVoxels()},
        )
        # The slices come one by one (SLICE): the final answer need not carry the whole volume again.
        propagate = Propagate(request, stopRule, volume_masks=False)
        self.tracker.track(self.worker.submit(propagate), Purpose.PROPAGATION, collector)
        self._dropPreview()
        return request.slice_range

    @property
    def propagating(self) -> bool:
        return self.tracker.pending(Purpose.PROPAGATION) is not None

    def cancelPropagation(self) -> None:
        """Stop before the next slice; the finished slices are still written when the worker answers."""
        requestId = self.tracker.pending(Purpose.PROPAGATION)
        if requestId is not None:
            self.worker.cancel(requestId)

    def segmentEverything(self, axis: Axis, index: int, options: Any = None) -> None:
        """Find every structure on slice ``index`` along ``axis`` and add each as a new segment (one
        undo step); ``options`` is a ``research.automatic.GridOptions`` (the default when None)."""
        count = self.volume.slice_count(axis)
        if not 0 <= index < count:
            raise ValueError(
                tr("Slice {index} is outside the volume (0 to {last}).").format(index=index, last=count - 1)
            )
        if self.segmentingEverything:
            raise ValueError(tr("Segment everything is already running: wait for it or cancel it."))
        request = SegmentEverything(axis, index) if options is None else SegmentEverything(axis, index, options=options)
        self.tracker.track(self.worker.submit(request), Purpose.EVERYTHING)

    @property
    def segmentingEverything(self) -> bool:
        return self.tracker.pending(Purpose.EVERYTHING) is not None

    def cancelEverything(self) -> None:
        requestId = self.tracker.pending(Purpose.EVERYTHING)
        if requestId is not None:
            self.worker.cancel(requestId)

    def processMessages(self) -> list[Notice]:
        """Apply every answer the engine has for this session; what to show the user."""
        notices: list[Notice] = []
        self._unshownSlices = {}
        for tracked, message in self.tracker.wanted(self.worker.poll()):
            try:
                notices.extend(self._handle(tracked.purpose, tracked.context, message))
            except Exception as error:
                logger.exception("SAM could not apply an answer")
                if tracked.purpose is Purpose.PROPAGATION:
                    self.preview.clear()
                notices.append(
                    Notice(NoticeKind.ERROR, tr("The result could not be applied: {error}").format(error=error))
                )
        self._showNewSlices()
        return notices

    def _showNewSlices(self) -> None:
        """Show the propagated slices that arrived in this batch in one preview update: several
        slices then cost one update of their slab, not one each."""
        for collector, indices in self._unshownSlices.values():
            if self.propagating and collector.masks:
                masks = list(collector.masks.values())
                shown = masks[0] if len(masks) == 1 else np.logical_or.reduce(masks)
                self.preview.mergeSlices(self.geometry, collector.axis, indices, shown, self.previewColor)
        self._unshownSlices = {}

    def _handle(self, purpose: Purpose, context: Any, message: WorkerMessage) -> list[Notice]:
        kind = message.kind
        if kind in (MessageKind.ERROR, MessageKind.OUT_OF_MEMORY):
            if purpose is Purpose.MODEL:
                self.modelReady = False
            if purpose is Purpose.PROPAGATION:
                self.preview.clear()  # no half-propagated preview stays on screen
            noticeKind = NoticeKind.ERROR if kind is MessageKind.ERROR else NoticeKind.OUT_OF_MEMORY
            return [Notice(noticeKind, message.text)]
        if purpose is Purpose.MODEL and kind is MessageKind.RESULT:
            self.modelReady = True
            self.modelDevice = str(message.value.device)
            ready = Notice(
                NoticeKind.MODEL,
                tr("{model} is ready on {device}.").format(model=message.value.spec.name, device=message.value.device),
            )
            return [ready, *self.useModelSpec(message.value.spec)]
        if purpose is Purpose.DOWNLOAD:
            if kind is MessageKind.PROGRESS:
                return [Notice(NoticeKind.DOWNLOAD, progress=message.value)]
            if kind is MessageKind.RESULT:
                return [Notice(NoticeKind.DOWNLOADED, tr("Saved {path}.").format(path=message.value))]
            return [Notice(NoticeKind.STATUS, tr("Download cancelled; it resumes where it stopped next time."))]
        if purpose is Purpose.PREVIEW and kind is MessageKind.RESULT:
            return self._showPreview(context, message.value)
        if purpose is Purpose.PROPAGATION:
            return self._propagationMessage(context, message)
        if purpose is Purpose.EVERYTHING:
            return self._everythingMessage(message)
        return []

    def _everythingMessage(self, message: WorkerMessage) -> list[Notice]:
        if message.kind is MessageKind.PROGRESS:
            return [Notice(NoticeKind.PROGRESS, progress=message.value)]
        if message.kind is not MessageKind.RESULT:
            return [Notice(NoticeKind.STATUS, message.text)]
        added = addEverythingSegments(self.segmentationNode, self.geometry, message.value, self.editing)
        if not added:
            return [Notice(NoticeKind.WRITTEN, tr("No structure was found on this slice; nothing was added."))]
        return [
            Notice(NoticeKind.WRITTEN, tr("Added {count} segments, one per structure found.").format(count=len(added)))
        ]

    def _showPreview(self, revision: int, preview: Any) -> list[Notice]:
        mask2d = np.asarray(preview.prediction.mask, bool)
        self._lastPreview = _Preview(revision, preview.axis, preview.index, mask2d)
        self.preview.showSlice(self.geometry, preview.axis, preview.index, mask2d, self.previewColor)
        return [Notice(NoticeKind.PREVIEW, tr("Predicted quality {score:.2f}.").format(score=preview.prediction.score))]

    def _propagationMessage(self, collector: PropagationCollector, message: WorkerMessage) -> list[Notice]:
        if message.kind is MessageKind.SLICE:
            collector.addSlice(message.value)
            if not self.closing:
                self._unshownSlices.setdefault(id(collector), (collector, set()))[1].add(message.value.index)
            return []
        if message.kind is MessageKind.PROGRESS:
            collector.setProgress(*message.value)
            return [Notice(NoticeKind.PROGRESS, progress=message.value)]
        self.preview.clear()
        if message.value is None:  # cancelled before it started
            return [
                Notice(NoticeKind.STATUS, tr("Propagation cancelled before any slice was done; nothing was written."))
            ]
        scene = self.segmentationNode.GetScene()
        if scene is None or not scene.IsNodePresent(self.segmentationNode):
            message = tr("The segmentation was removed during the propagation: nothing was written.")
            return [Notice(NoticeKind.ERROR, message)]
        notes = collector.write(self.editing, self.segmentationNode, self.geometry, message.value)
        self.clearPrompts()
        return [Notice(NoticeKind.WRITTEN, "\n".join([summary(message.value), *notes]))]

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def finished(self) -> bool:
        """After ``close``: True once nothing is left to write."""
        return not self.propagating

    def close(self) -> bool:
        """Stop wanting every answer and cancel the requests; a running propagation is cancelled too,
        but its finished slices are still written when the engine answers: keep calling
        ``processMessages`` until ``finished``. True when there is such a propagation."""
        self._closing = True
        propagation = self.tracker.pending(Purpose.PROPAGATION)
        for requestId in self.tracker.forgetAll(keep=Purpose.PROPAGATION):
            self.worker.cancel(requestId)
        if propagation is not None:
            self.worker.cancel(propagation)
        self.clearPrompts()
        return propagation is not None
