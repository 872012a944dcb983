"""The "SAM" Segment Editor effect: click or drag prompts in a slice view, preview, Apply,
propagate. Thin: decisions live in SAMSegmentMRML (tested headless), inference in the
persistent worker owned by the SAMSegment module's logic."""

import logging
import math
import os

import qt
import vtk

import slicer
from slicer.i18n import tr as _
from SegmentEditorEffects import AbstractScriptedSegmentEditorEffect

from SAMSegmentEffect.prompt_markers import PromptMarkers
from SAMSegmentLib.checkpoints import CheckpointStore
from SAMSegmentLib.intensity import PRESETS
from SAMSegmentLib.registry import MODELS, Family
from SAMSegmentMRML.geometry import arrayToRasMatrix
from SAMSegmentMRML.segment_writer import Modification
from SAMSegmentMRML.slice_views import (
    ObliqueSliceError,
    OutsideVolumeError,
    SlicePosition,
    slicePositionFromXy,
    sliceToXy,
)

POLL_INTERVAL_MS = 50
DRAG_THRESHOLD_PIXELS = 5  # a shorter drag is a click
REMOVE_RADIUS_SLICE_PIXELS = 4.0
DEVICES = ("auto", "cpu", "cuda", "mps")
DIRECTIONS = ("both", "forward", "backward")
SETTINGS_PREFIX = "SAMSegment/"
DEFAULTS = {
    "Model": "litemedsam",
    "Device": "auto",
    "IntensityPreset": "auto",
    "MemoryPolicy": "recent",
    "Direction": "both",
}


class EffectEditing:
    """SegmentEditing through this effect: the Segment Editor widget's own logic, masking and undo."""

    _MODES = {
        Modification.ADD: slicer.qSlicerSegmentEditorAbstractEffect.ModificationModeAdd,
        Modification.REMOVE: slicer.qSlicerSegmentEditorAbstractEffect.ModificationModeRemove,
    }

    def __init__(self, scriptedEffect):
        self.scriptedEffect = scriptedEffect

    def saveStateForUndo(self):
        self.scriptedEffect.saveStateForUndo()

    def selectedSegmentID(self):
        return self.scriptedEffect.parameterSetNode().GetSelectedSegmentID() or ""

    def modifySegment(self, segmentationNode, segmentID, labelmap, modification, extent):
        # Only the selected segment is ever written (checked by writeSegmentMasks).
        self.scriptedEffect.modifySelectedSegmentByLabelmap(labelmap, self._MODES[modification], list(extent))


class SegmentEditorEffect(AbstractScriptedSegmentEditorEffect):
    def __init__(self, scriptedEffect):
        scriptedEffect.name = "SAM"  # no tr (modules find effects by name)
        scriptedEffect.title = _("SAM")
        scriptedEffect.perSegment = True
        scriptedEffect.requireSegments = True
        AbstractScriptedSegmentEditorEffect.__init__(self, scriptedEffect)
        self.session = None
        self.volumeKey = None
        self.arrayToRas = None
        self.markers = {}  # slice widget -> PromptMarkers
        self.dragStart = None  # (slice widget, xy) of a left press
        self.rightPress = None
        self.pollTimer = qt.QTimer()
        self.pollTimer.setInterval(POLL_INTERVAL_MS)
        self.pollTimer.timeout.connect(self.onPoll)

    def clone(self):
        import qSlicerSegmentationsEditorEffectsPythonQt as effects

        clonedEffect = effects.qSlicerSegmentEditorScriptedEffect(None)
        clonedEffect.setPythonSource(__file__.replace("\\", "/"))
        return clonedEffect

    def icon(self):
        iconPath = os.path.join(os.path.dirname(__file__), "../Resources/Icons/SAMSegmentEffect.png")
        return qt.QIcon(iconPath) if os.path.exists(iconPath) else qt.QIcon()

    def helpText(self):
        return "<html>" + _(
            """Segment with Segment Anything models from a few prompts.<p>
            <ul style="margin: 0">
            <li><b>Left-click:</b> add a point inside the structure.</li>
            <li><b>Ctrl + left-click</b> or <b>right-click:</b> add a point outside it.</li>
            <li><b>Left-drag:</b> draw a box around it.</li>
            <li><b>Shift + left-click:</b> remove the prompt under the mouse.</li>
            </ul><p>
            A preview follows each prompt. <b>Apply</b> writes it into the selected segment on that
            slice; <b>Propagate</b> continues slice by slice through the volume. Each is one undo step,
            and the editor's masking and overwrite settings apply.<p>
            SAM 2 models remember what they segmented: after a propagation, prompts on any slice
            correct the segment there, and propagating again from that slice keeps the rest."""
        )

    # ----- options -----

    def setupOptionsFrame(self):
        self.modelSelector = qt.QComboBox()
        self.modelSelector.toolTip = _("Segment Anything model and whether its weights are on this computer.")
        self.downloadButton = qt.QPushButton(_("Download"))
        self.downloadProgress = qt.QProgressBar()
        self.downloadProgress.visible = False
        modelRow = qt.QHBoxLayout()
        modelRow.addWidget(self.modelSelector, 1)
        modelRow.addWidget(self.downloadButton)
        self.scriptedEffect.addLabeledOptionsWidget(_("Model:"), modelRow)
        self.scriptedEffect.addOptionsWidget(self.downloadProgress)

        self.deviceSelector = qt.QComboBox()
        self.deviceSelector.addItems(DEVICES)
        self.scriptedEffect.addLabeledOptionsWidget(_("Device:"), self.deviceSelector)
        self.presetSelector = qt.QComboBox()
        self.presetSelector.addItems(PRESETS)
        self.presetSelector.toolTip = _("How voxel values are scaled for the model (CT windows or percentiles).")
        self.scriptedEffect.addLabeledOptionsWidget(_("Intensity:"), self.presetSelector)
        self.memorySelector = qt.QComboBox()
        self.memorySelector.addItem(_("Recent frames"), "recent")
        self.memorySelector.addItem(_("Self-sorting (MedSAM-2)"), "self-sorting")
        self.memorySelector.toolTip = _(
            "Which slices SAM 2 models remember while propagating: the most recent ones, or a bank of "
            "the most confident and most varied ones (MedSAM-2). Changing it starts their memory over."
        )
        self.scriptedEffect.addLabeledOptionsWidget(_("Memory:"), self.memorySelector)

        self.applyButton = qt.QPushButton(_("Apply"))
        self.applyButton.toolTip = _("Write the preview into the selected segment on the prompted slice.")
        self.clearButton = qt.QPushButton(_("Clear prompts"))
        actions = qt.QHBoxLayout()
        actions.addWidget(self.applyButton)
        actions.addWidget(self.clearButton)
        self.scriptedEffect.addOptionsWidget(actions)

        self.directionSelector = qt.QComboBox()
        self.directionSelector.addItems(DIRECTIONS)
        self.limitRangeCheckBox = qt.QCheckBox(_("slices"))
        self.firstSliceSpinBox = qt.QSpinBox()
        self.lastSliceSpinBox = qt.QSpinBox()
        self.propagateButton = qt.QPushButton(_("Propagate"))
        self.cancelPropagationButton = qt.QPushButton(_("Cancel"))
        propagation = qt.QHBoxLayout()
        for widget in (
            self.directionSelector,
            self.limitRangeCheckBox,
            self.firstSliceSpinBox,
            self.lastSliceSpinBox,
            self.propagateButton,
            self.cancelPropagationButton,
        ):
            propagation.addWidget(widget)
        self.scriptedEffect.addLabeledOptionsWidget(_("Propagate:"), propagation)
        self.propagationProgress = qt.QProgressBar()
        self.propagationProgress.visible = False
        self.scriptedEffect.addOptionsWidget(self.propagationProgress)
        self.statusLabel = qt.QLabel()
        self.statusLabel.wordWrap = True
        self.scriptedEffect.addOptionsWidget(self.statusLabel)

        self.modelSelector.currentIndexChanged.connect(self.onModelChanged)
        self.deviceSelector.currentIndexChanged.connect(self.onModelChanged)
        self.presetSelector.currentIndexChanged.connect(self.onVolumeOptionsChanged)
        self.memorySelector.currentIndexChanged.connect(self.onVolumeOptionsChanged)
        self.directionSelector.currentIndexChanged.connect(self.updateMRMLFromGUI)
        self.downloadButton.clicked.connect(self.onDownload)
        self.applyButton.clicked.connect(self.onApply)
        self.clearButton.clicked.connect(self.onClearPrompts)
        self.propagateButton.clicked.connect(self.onPropagate)
        self.cancelPropagationButton.clicked.connect(self.onCancelPropagation)
        self.limitRangeCheckBox.toggled.connect(self.updateButtons)

    def setMRMLDefaults(self):
        for name, default in DEFAULTS.items():
            self.scriptedEffect.setParameterDefault(name, qt.QSettings().value(SETTINGS_PREFIX + name, default))

    def updateGUIFromMRML(self):
        self._fillModelSelector()
        for selector, name in (
            (self.deviceSelector, "Device"),
            (self.presetSelector, "IntensityPreset"),
            (self.directionSelector, "Direction"),
        ):
            wasBlocked = selector.blockSignals(True)
            selector.currentText = self.scriptedEffect.parameter(name)
            selector.blockSignals(wasBlocked)
        wasBlocked = self.memorySelector.blockSignals(True)
        memoryPolicy = self.scriptedEffect.parameter("MemoryPolicy")
        self.memorySelector.currentIndex = max(0, self.memorySelector.findData(memoryPolicy))
        self.memorySelector.blockSignals(wasBlocked)
        self.updateButtons()

    def updateMRMLFromGUI(self):
        values = {
            "Model": self.modelSelector.currentData,
            "Device": self.deviceSelector.currentText,
            "IntensityPreset": self.presetSelector.currentText,
            "MemoryPolicy": self.memorySelector.currentData,
            "Direction": self.directionSelector.currentText,
        }
        for name, value in values.items():
            if value:
                self.scriptedEffect.setParameter(name, value)
                qt.QSettings().setValue(SETTINGS_PREFIX + name, value)

    def _fillModelSelector(self):
        store = CheckpointStore()
        wasBlocked = self.modelSelector.blockSignals(True)
        self.modelSelector.clear()
        for name, spec in MODELS.items():
            label = f"{name} ({store.state(spec)}, {spec.size_bytes / 1e6:.0f} MB)"
            self.modelSelector.addItem(label, name)
        self.modelSelector.currentIndex = max(0, self.modelSelector.findData(self.scriptedEffect.parameter("Model")))
        self.modelSelector.blockSignals(wasBlocked)
        spec = MODELS.get(self.modelSelector.currentData)
        self.downloadButton.enabled = spec is not None and store.state(spec) == "not downloaded"
        self.memorySelector.enabled = spec is not None and spec.family is Family.SAM2

    def updateButtons(self):
        session = self.session
        ready = session is not None and session.modelReady
        propagating = session is not None and session.propagating
        self.applyButton.enabled = ready and session.canApply and not propagating
        self.clearButton.enabled = session is not None and not session.prompts.empty
        self.propagateButton.enabled = ready and not session.prompts.empty and not propagating
        self.cancelPropagationButton.enabled = propagating
        self.firstSliceSpinBox.enabled = self.lastSliceSpinBox.enabled = self.limitRangeCheckBox.checked

    # ----- session life -----

    def activate(self):
        from SAMSegmentEffect.dependencies import ensureDependencies

        if not ensureDependencies():
            self._status(_("SAM cannot run until its packages are installed."), error=True)
            return
        self._startSession()

    def deactivate(self):
        self._closeSession()

    def cleanup(self):
        self._closeSession()
        self.pollTimer.timeout.disconnect(self.onPoll)

    def sourceVolumeNodeChanged(self):
        if self.session is not None:
            self._startSession()

    def referenceGeometryChanged(self):
        if self.session is not None:
            self._startSession()

    def _startSession(self):
        from SAMSegmentMRML.session import EditorSession

        self._closeSession()
        parameterNode = self.scriptedEffect.parameterSetNode()
        volumeNode = parameterNode.GetSourceVolumeNode() if parameterNode else None
        source = self.scriptedEffect.sourceVolumeImageData() if volumeNode else None
        if source is None:
            self._status(_("Select a source volume to segment."), error=True)
            return
        logic = slicer.util.getModuleLogic("SAMSegment")
        try:
            worker = logic.worker()  # imports torch the first time
        except ImportError as error:
            logging.exception("The SAM inference worker could not start")
            self._status(_("SAM could not start: {error}").format(error=error), error=True)
            return
        self.session = EditorSession(
            worker,
            slicer.mrmlScene,
            parameterNode.GetSegmentationNode(),
            source,
            EffectEditing(self.scriptedEffect),
        )
        self.arrayToRas = arrayToRasMatrix(self.session.geometry)
        count = max(self.session.volume.array.shape) - 1
        for spinBox in (self.firstSliceSpinBox, self.lastSliceSpinBox):
            spinBox.maximum = count
        self._loadModel()
        self.volumeKey = f"{volumeNode.GetID()}:{volumeNode.GetImageData().GetMTime()}"
        self._sendVolume()
        self.pollTimer.start()
        self.updateButtons()

    def _loadModel(self):
        name, device = self.scriptedEffect.parameter("Model"), self.scriptedEffect.parameter("Device")
        logic = slicer.util.getModuleLogic("SAMSegment")
        if logic.loadedModel == (name, device):
            self.session.modelReady = True
            return
        self._status(_("Loading {model}...").format(model=name))
        self.session.loadModel(name, device)

    def _closeSession(self):
        self.pollTimer.stop()
        if self.session is not None:
            self.session.close()
            self.session = None
        for sliceWidget, markers in self.markers.items():
            for actor in markers.actors:
                self.scriptedEffect.removeActor2D(sliceWidget, actor)
        self.markers = {}
        self.dragStart = self.rightPress = None

    # ----- mouse -----

    def processInteractionEvents(self, callerInteractor, eventId, viewWidget):
        if self.session is None or viewWidget.className() != "qMRMLSliceWidget":
            return False
        xy = callerInteractor.GetEventPosition()
        if eventId == vtk.vtkCommand.LeftButtonPressEvent:
            if callerInteractor.GetShiftKey():
                self._edit(
                    viewWidget, lambda position: self.session.removePromptAt(position, REMOVE_RADIUS_SLICE_PIXELS), xy
                )
            else:
                self.dragStart = (viewWidget, xy)
            return True
        if eventId == vtk.vtkCommand.MouseMoveEvent and self.dragStart and self.dragStart[0] is viewWidget:
            self._drawRubberBand(viewWidget, self.dragStart[1], xy)
            return True
        if eventId == vtk.vtkCommand.LeftButtonReleaseEvent and self.dragStart:
            start, self.dragStart = self.dragStart[1], None
            if math.dist(start, xy) >= DRAG_THRESHOLD_PIXELS:
                self._edit(
                    viewWidget, lambda corner: self.session.setBox(corner, self._position(viewWidget, start)), xy
                )
            else:
                negative = bool(callerInteractor.GetControlKey())
                self._edit(viewWidget, lambda position: self.session.addPoint(position, not negative), xy)
            return True
        # A right click (no drag, which zooms) adds a negative point; the press is left to Slicer.
        if eventId == vtk.vtkCommand.RightButtonPressEvent:
            self.rightPress = xy
        elif eventId == vtk.vtkCommand.RightButtonReleaseEvent and self.rightPress is not None:
            pressed, self.rightPress = self.rightPress, None
            if math.dist(pressed, xy) < DRAG_THRESHOLD_PIXELS:
                self._edit(viewWidget, lambda position: self.session.addPoint(position, False), xy)
                return True
        return False

    def processViewNodeEvents(self, callerViewNode, eventId, viewWidget):
        if self.session is not None and callerViewNode and callerViewNode.IsA("vtkMRMLSliceNode"):
            self._drawPrompts(viewWidget)

    def _position(self, sliceWidget, xy):
        sliceNode = sliceWidget.sliceLogic().GetSliceNode()
        return slicePositionFromXy(sliceNode, xy, self.arrayToRas, self.session.volume.array.shape)

    def _edit(self, sliceWidget, change, xy):
        """Apply a prompt change at view position ``xy``; problems are shown, never raised."""
        try:
            change(self._position(sliceWidget, xy))
        except (ObliqueSliceError, OutsideVolumeError, ValueError) as error:
            self._status(str(error), error=True)
            return
        self._status(_("Segmenting...") if not self.session.prompts.empty else "")
        self._drawAllPrompts()
        self.updateButtons()

    # ----- drawing -----

    def _markersFor(self, sliceWidget):
        if sliceWidget not in self.markers:
            markers = PromptMarkers()
            for actor in markers.actors:
                self.scriptedEffect.addActor2D(sliceWidget, actor)
            self.markers[sliceWidget] = markers
        return self.markers[sliceWidget]

    def _drawAllPrompts(self):
        layoutManager = slicer.app.layoutManager()
        for name in layoutManager.sliceViewNames():
            self._drawPrompts(layoutManager.sliceWidget(name))

    def _drawPrompts(self, sliceWidget, boxCorners=None):
        prompts = self.session.prompts
        sliceNode = sliceWidget.sliceLogic().GetSliceNode()
        positive, negative = [], []
        if not prompts.empty:
            for point in prompts.points:
                xyz = sliceToXy(sliceNode, SlicePosition(prompts.axis, prompts.index, point.xy), self.arrayToRas)
                (positive if point.positive else negative).append(xyz)
            if prompts.box is not None and boxCorners is None:
                x0, y0, x1, y1 = prompts.box
                boxCorners = tuple(
                    sliceToXy(sliceNode, SlicePosition(prompts.axis, prompts.index, corner), self.arrayToRas)
                    for corner in ((x0, y0), (x1, y1))
                )
        self._markersFor(sliceWidget).update(positive, negative, boxCorners)
        sliceWidget.sliceView().scheduleRender()

    def _drawRubberBand(self, sliceWidget, start, end):
        self._drawPrompts(sliceWidget, boxCorners=((start[0], start[1], 0.0), (end[0], end[1], 0.0)))

    # ----- buttons -----

    def onModelChanged(self):
        self.updateMRMLFromGUI()
        self._fillModelSelector()
        if self.session is not None:
            self._loadModel()
        self.updateButtons()

    def onVolumeOptionsChanged(self):
        self.updateMRMLFromGUI()
        if self.session is not None:
            self._sendVolume()
            self._drawAllPrompts()

    def _sendVolume(self):
        # The same key for the same voxels: embeddings are cached per key and intensity mapping.
        self.session.setVolume(
            self.scriptedEffect.parameter("IntensityPreset"),
            volumeKey=self.volumeKey,
            memoryPolicy=self.scriptedEffect.parameter("MemoryPolicy"),
        )

    def onDownload(self):
        if self.session is None:
            self._status(_("Select a source volume first."), error=True)
            return
        if self.downloadProgress.visible:
            self.session.cancelDownload()
            return
        self.session.download(self.scriptedEffect.parameter("Model"))
        self.downloadButton.text = _("Cancel download")
        self.downloadProgress.visible = True

    def onApply(self):
        try:
            self.session.apply(self.scriptedEffect.parameterSetNode().GetSelectedSegmentID())
        except (ValueError, KeyError) as error:
            self._status(str(error), error=True)
        self._drawAllPrompts()
        self.updateButtons()

    def onClearPrompts(self):
        self.session.clearPrompts()
        self._status("")
        self._drawAllPrompts()
        self.updateButtons()

    def onPropagate(self):
        sliceRange = None
        if self.limitRangeCheckBox.checked:
            sliceRange = (self.firstSliceSpinBox.value, self.lastSliceSpinBox.value)
        try:
            self.session.propagate(
                self.scriptedEffect.parameterSetNode().GetSelectedSegmentID(),
                self.scriptedEffect.parameter("Direction"),
                sliceRange,
            )
        except ValueError as error:
            self._status(str(error), error=True)
            return
        self.propagationProgress.value = 0
        self.propagationProgress.visible = True
        self._status(_("Propagating..."))
        self.updateButtons()

    def onCancelPropagation(self):
        self.session.cancelPropagation()
        self._status(_("Cancelling after the current slice..."))

    # ----- worker answers -----

    def onPoll(self):
        if self.session is None:
            return
        try:
            notices = self.session.processMessages()
        except Exception as error:  # noqa: BLE001 - e.g. the selected segment changed mid-propagation
            logging.exception("SAM could not apply a result")
            self._status(str(error), error=True)
            self.propagationProgress.visible = False
            notices = []
        for notice in notices:
            self._show(notice)
        if notices:
            self._drawAllPrompts()
            self.updateButtons()

    def _show(self, notice):
        if notice.kind == "progress":
            done, planned = notice.progress
            self.propagationProgress.maximum = max(1, planned)
            self.propagationProgress.value = done
        elif notice.kind == "download":
            done, total = notice.progress
            self.downloadProgress.maximum = 1000
            self.downloadProgress.value = int(1000 * done / max(1, total))
        elif notice.kind == "out_of_memory":
            self._offerCpu(notice.text)
        elif notice.kind == "model":
            slicer.util.getModuleLogic("SAMSegment").loadedModel = (
                self.scriptedEffect.parameter("Model"),
                self.scriptedEffect.parameter("Device"),
            )
            self._status(notice.text)
        else:
            self._status(notice.text, error=notice.kind == "error")
        if notice.kind in ("written", "error", "status", "downloaded"):
            self.propagationProgress.visible = self.session is not None and self.session.propagating
            self.downloadProgress.visible = False
            self.downloadButton.text = _("Download")
            self._fillModelSelector()

    def _offerCpu(self, text):
        if self.scriptedEffect.parameter("Device") != "cpu" and slicer.util.confirmYesNoDisplay(
            text + "\n\n" + _("Switch SAM to the CPU (slower, but with the computer's memory)?")
        ):
            self.scriptedEffect.setParameter("Device", "cpu")
            self.updateGUIFromMRML()
            self._loadModel()
        else:
            self._status(text, error=True)

    def _status(self, text, error=False):
        self.statusLabel.text = text
        self.statusLabel.setStyleSheet("color: #c0392b" if error else "")
