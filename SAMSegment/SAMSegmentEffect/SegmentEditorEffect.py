"""The "SAM" Segment Editor effect: click or drag prompts in a slice view, preview, Apply,
propagate. Thin: decisions live in SAMSegmentMRML (tested headless), inference in the
persistent worker owned by the SAMSegment module's logic.

Slicer loads this file through qSlicerSegmentEditorScriptedEffect::setPythonSource, which uses the
parent folder name (SAMSegmentEffect) as module name: SAMSegment.registerEffect() imports the
SAMSegmentEffect package first (its __init__ exports this class), so the imports below find the
package instead of this file loaded under the package's name."""

import logging
import math
import os

import qt
import slicer
import vtk
from SegmentEditorEffects import AbstractScriptedSegmentEditorEffect
from slicer.i18n import tr as _

from SAMSegmentEffect.effect_editing import EffectEditing
from SAMSegmentEffect.effect_options import EffectOptions, setMRMLDefaults
from SAMSegmentEffect.prompt_drawing import PromptDrawing
from SAMSegmentLib.errors import SAMSegmentError
from SAMSegmentMRML.display_intensity import engineIntensity
from SAMSegmentMRML.geometry import arrayToWorldMatrix, volumeKey
from SAMSegmentMRML.slice_views import ObliqueSliceError, OutsideVolumeError, slicePositionFromXy

POLL_INTERVAL_MS = 50
DRAG_THRESHOLD_PIXELS = 5  # a shorter drag is a click
REMOVE_RADIUS_SLICE_PIXELS = 4.0


class SegmentEditorEffect(AbstractScriptedSegmentEditorEffect):
    def __init__(self, scriptedEffect):
        scriptedEffect.name = "SAM"  # no tr (modules find effects by name)
        scriptedEffect.title = _("SAM")
        scriptedEffect.perSegment = True
        scriptedEffect.requireSegments = True
        AbstractScriptedSegmentEditorEffect.__init__(self, scriptedEffect)
        self.session = None
        self.volumeKey = None
        self.sentIntensity = None  # what the engine was last told about intensity
        self.arrayToRas = None
        self.drawing = PromptDrawing(scriptedEffect)
        self.dragStart = None  # (slice widget, xy) of a left press
        self.lastSliceWidget = None  # the view "Segment everything" works in
        self.rightPress = None
        self.startFailed = False  # the last start failed: a new volume or model tries again
        self.finishing = []  # closed sessions whose cancelled propagation still writes its finished slices
        self.options = None  # built in setupOptionsFrame(), which may come after setMRMLDefaults()
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
            <li><b>Left-click:</b> add a point inside the structure (models listed as "box only", such
            as LiteMedSAM, take a box alone; choosing one removes the points placed).</li>
            <li><b>Ctrl + left-click</b> or <b>right-click:</b> add a point outside it (right-drag zooms
            only when another effect is active).</li>
            <li><b>Left-drag:</b> draw a box around it.</li>
            <li><b>Shift + left-click:</b> remove the prompt under the mouse.</li>
            </ul><p>
            A preview follows each prompt. <b>Apply</b> writes it into the selected segment on that
            slice; <b>Propagate</b> continues slice by slice through the volume. Each is one undo step,
            and the editor's masking and overwrite settings apply. A result replaces the parts of the
            segment it covers or that you clicked (click a stray piece outside it to remove it); other
            objects in the segment stay.<p>
            Where a propagation stopped early, prompt a slice it missed and Propagate again: with
            <b>Keep segmented slices</b> it fills only the slices up to those already segmented.<p>
            SAM 2 models remember what they segmented: after a propagation, prompts on any slice
            correct the segment there, and propagating again from that slice keeps the rest."""
        )

    # ----- options -----

    def setupOptionsFrame(self):
        self.options = EffectOptions(self.scriptedEffect)
        self.options.setup()
        # (signal, slot) pairs, kept so that cleanup() disconnects exactly these.
        options = self.options
        self.connections = [
            (options.engineSelector.currentIndexChanged, self.onEngineChanged),
            (options.serverUrlEdit.editingFinished, self.onEngineChanged),
            (options.serverTokenEdit.editingFinished, self.onEngineChanged),
            (options.testConnectionButton.clicked, self.onTestConnection),
            (options.modelSelector.currentIndexChanged, self.onModelChanged),
            (options.deviceSelector.currentIndexChanged, self.onModelChanged),
            (options.presetSelector.currentIndexChanged, self.onVolumeOptionsChanged),
            (options.memorySelector.currentIndexChanged, self.onVolumeOptionsChanged),
            (options.directionSelector.currentIndexChanged, self.updateMRMLFromGUI),
            (options.keepSegmentedCheckBox.toggled, self.updateMRMLFromGUI),
            (options.installButton.clicked, self.onInstall),
            (options.downloadButton.clicked, self.onDownload),
            (options.applyButton.clicked, self.onApply),
            (options.clearButton.clicked, self.onClearPrompts),
            (options.propagateButton.clicked, self.onPropagate),
            (options.cancelPropagationButton.clicked, self.onCancelPropagation),
            (options.everythingButton.clicked, self.onSegmentEverything),
            (options.cancelEverythingButton.clicked, self.onCancelEverything),
            (options.limitRangeCheckBox.toggled, self.updateButtons),
            (self.pollTimer.timeout, self.onPoll),
        ]
        for signal, slot in self.connections[:-1]:  # the timer is connected in __init__
            signal.connect(slot)

    def setMRMLDefaults(self):
        # May run before setupOptionsFrame() (qMRMLSegmentEditorWidget::updateEffectList): no widgets.
        setMRMLDefaults(self.scriptedEffect)

    def updateGUIFromMRML(self):
        if self.options is None:
            return
        self.options.updateGUIFromMRML()
        self.updateButtons()

    def updateMRMLFromGUI(self):
        if self.options is None:
            return
        self.options.updateMRMLFromGUI()

    def updateButtons(self):
        if self.options is not None:
            self.options.updateButtons(self.session)

    # ----- session life -----

    def activate(self):
        """Never installs anything (installing runs processEvents() and asks questions): when
        packages are missing the Install button says so, and the user starts it."""
        from SAMSegmentEffect.settings import engineChoice

        self.options.showEngineChoice(engineChoice())
        self.options.fillModelSelector()
        self.options.updateGUIFromMRML()
        self._startIfPackagesReady()

    def _startIfPackagesReady(self):
        """Start a session, unless the engine runs here and SAM's packages are missing (a server
        needs none of them in Slicer: the protocol's side needs only what Slicer bundles, numpy,
        scipy and SimpleITK)."""
        from SAMSegmentEffect.dependencies import dependenciesSatisfied
        from SAMSegmentEffect.settings import engineChoice

        if not engineChoice().remote and not dependenciesSatisfied():
            self.options.installButton.visible = True
            self.options.status(_("SAM needs PyTorch and a few other Python packages: click Install."), error=True)
            self.updateButtons()
            return
        self.options.installButton.visible = False
        self._startSession()

    def deactivate(self):
        self._closeSession()

    def cleanup(self):
        """Called by Slicer before the effect is deleted (AbstractScriptedSegmentEditorEffect.cleanup):
        stop the timer and disconnect every connection this effect made."""
        self._closeSession()
        self.finishing.clear()  # the effect is going away: nothing is left to show their results
        self.pollTimer.stop()
        for signal, slot in getattr(self, "connections", [(self.pollTimer.timeout, self.onPoll)]):
            signal.disconnect(slot)
        self.connections = []

    def onInstall(self):
        from SAMSegmentEffect.dependencies import dependenciesSatisfied, installDependencies

        self.options.installButton.enabled = False
        self.options.status(_("Installing SAM's packages; this can take several minutes..."))
        try:
            installed = installDependencies()
        finally:
            self.options.installButton.enabled = True
        if not installed or not dependenciesSatisfied():
            self.options.status(_("SAM cannot run until its packages are installed."), error=True)
            return
        self.options.installButton.visible = False
        self.options.status(_("SAM's packages are installed."))
        # Installing processed events: the user may have chosen another effect meanwhile.
        if self.scriptedEffect.active():
            self._startSession()

    def sourceVolumeNodeChanged(self):
        self._restartIfWanted()

    def referenceGeometryChanged(self):
        self._restartIfWanted()

    def _restartIfWanted(self):
        """A running session follows the new volume; so does a failed start (nothing was running)."""
        if self.session is not None or (self.startFailed and self.scriptedEffect.active()):
            self._startSession()

    def _startSession(self):
        from SAMSegmentMRML.session import EditorSession

        self._closeSession()
        self.startFailed = True
        parameterNode = self.scriptedEffect.parameterSetNode()
        volumeNode = parameterNode.GetSourceVolumeNode() if parameterNode else None
        source = self.scriptedEffect.sourceVolumeImageData() if volumeNode else None
        if source is None:
            self.options.status(_("Select a source volume to segment."), error=True)
            return
        logic = slicer.util.getModuleLogic("SAMSegment")
        try:
            worker = logic.workerClient()  # the engine process starts with the first request
            worker.on_messages = self.onPoll  # answers are shown as soon as they arrive
            self.session = EditorSession(
                worker,
                slicer.mrmlScene,
                parameterNode.GetSegmentationNode(),
                source,
                EffectEditing(self.scriptedEffect),
            )
        except SAMSegmentError as error:  # e.g. a constant or 4D volume: said, not raised
            self.options.status(str(error), error=True)
            return
        except (ImportError, OSError, RuntimeError) as error:  # OSError: e.g. a torch DLL failing to load on Windows
            logging.exception("The SAM inference worker could not start")
            self.options.status(_("SAM could not start: {error}").format(error=error), error=True)
            return
        self.startFailed = False
        self.arrayToRas = arrayToWorldMatrix(self.session.geometry, parameterNode.GetSegmentationNode())
        count = max(self.session.volume.array.shape) - 1
        for spinBox in (self.options.firstSliceSpinBox, self.options.lastSliceSpinBox):
            spinBox.maximum = count
        self._loadModel()
        self.volumeKey = volumeKey(volumeNode, source, parameterNode.GetSegmentationNode())
        self._sendVolume()
        self.pollTimer.start()
        self.updateButtons()

    def _loadModel(self):
        name, device = self.scriptedEffect.parameter("Model"), self.scriptedEffect.parameter("Device")
        logic = slicer.util.getModuleLogic("SAMSegment")
        if logic.loadedModel == (name, device):
            self.session.modelReady = True
        else:
            self.options.status(_("Loading {model}...").format(model=name))
            self.session.loadModel(name, device)
        # After the load request, so a preview of the prompts left is asked of the new model.
        notices = self.session.useModelSpec(self.options.modelSpec(name))
        if notices:
            self._showAll(notices)
            self._drawAllPrompts()

    def _closeSession(self):
        if self.session is not None and self.session.close():
            self.finishing.append(self.session)  # its finished slices are written when the engine answers
        self.session = None
        if not self.finishing:
            self.pollTimer.stop()
        self.drawing.clear()
        self.dragStart = self.rightPress = self.lastSliceWidget = None

    # ----- mouse -----

    def processInteractionEvents(self, callerInteractor, eventId, viewWidget):
        """Returns True to abort the event for Slicer's other interactors (the slice intersection
        widget: vtkMRMLSliceIntersectionWidget.cxx zooms on right drag and maximizes the view on a
        left double click)."""
        if self.session is None or viewWidget.className() != "qMRMLSliceWidget":
            return False
        xy = callerInteractor.GetEventPosition()
        anyModifier = callerInteractor.GetShiftKey() or callerInteractor.GetControlKey() or callerInteractor.GetAltKey()
        self.lastSliceWidget = viewWidget
        # A quick second click arrives as a double click instead of a press: treat it as a press.
        if eventId in (vtk.vtkCommand.LeftButtonPressEvent, vtk.vtkCommand.LeftButtonDoubleClickEvent):
            if callerInteractor.GetShiftKey():
                self._edit(
                    viewWidget, lambda position: self.session.removePromptAt(position, REMOVE_RADIUS_SLICE_PIXELS), xy
                )
            else:
                self.dragStart = (viewWidget, xy)
            return True
        if eventId == vtk.vtkCommand.MouseMoveEvent and self.dragStart and self.dragStart[0] is viewWidget:
            self.drawing.drawRubberBand(viewWidget, self.session.prompts, self.arrayToRas, self.dragStart[1], xy)
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
        # A right click adds a negative point. Press and release are both aborted, as the Draw
        # effect does (SegmentEditorDrawEffect.py): letting the press through starts zooming,
        # which only the release ends.
        if eventId == vtk.vtkCommand.RightButtonPressEvent and not anyModifier:
            self.rightPress = (viewWidget, xy)
            return True
        if eventId == vtk.vtkCommand.RightButtonReleaseEvent and self.rightPress is not None:
            (pressView, pressed), self.rightPress = self.rightPress, None
            if pressView is viewWidget and math.dist(pressed, xy) < DRAG_THRESHOLD_PIXELS:
                self._edit(viewWidget, lambda position: self.session.addPoint(position, False), xy)
            return True
        return False

    def processViewNodeEvents(self, callerViewNode, eventId, viewWidget):
        if self.session is not None and callerViewNode and callerViewNode.IsA("vtkMRMLSliceNode"):
            self.drawing.draw(viewWidget, self.session.prompts, self.arrayToRas)

    def _position(self, sliceWidget, xy):
        sliceNode = sliceWidget.sliceLogic().GetSliceNode()
        return slicePositionFromXy(sliceNode, xy, self.arrayToRas, self.session.volume.array.shape)

    def _edit(self, sliceWidget, change, xy):
        """Apply a prompt change at view position ``xy``; problems are shown, never raised."""
        from SAMSegmentMRML.session import Purpose

        if not self.session.modelReady and self.session.tracker.pending(Purpose.MODEL) is None:
            self._loadModel()  # loading failed (e.g. the server was unreachable): the prompt tries again
        if self._engineIntensity() != self.sentIntensity:
            self._sendVolume()  # the window/level changed since: the model sees what the user now sees
        try:
            change(self._position(sliceWidget, xy))
        except (ObliqueSliceError, OutsideVolumeError, ValueError) as error:
            self.options.status(str(error), error=True)
            return
        self.options.status(_("Segmenting...") if not self.session.prompts.empty else "")
        self._drawAllPrompts()
        self.updateButtons()

    def _drawAllPrompts(self):
        self.drawing.drawAll(self.session.prompts, self.arrayToRas)

    # ----- buttons -----

    def onEngineChanged(self):
        """The user chose another engine, or another server address or token: saved in Slicer's
        settings; the current engine finishes what it was asked and a session starts on the new one."""
        from SAMSegmentEffect.settings import saveEngineChoice

        choice = self.options.engineChoiceFromGUI()
        saveEngineChoice(choice)
        self.options.serverFrame.visible = choice.remote
        logic = slicer.util.getModuleLogic("SAMSegment")
        if choice == logic.engineChoice:
            return
        self.options.showConnection("")
        self.options.fillModelSelector()  # whose weights and fine-tuned models are listed
        self._closeSession()  # its cancelled propagation still gets its finished slices from the old engine
        logic.useEngine(choice)
        if self.scriptedEffect.active():
            self._startIfPackagesReady()

    def onTestConnection(self):
        """Ask the server in the address box (as typed, saved or not) whether it is there, without
        waiting for it: the answer is shown when it comes (within a few seconds)."""
        choice = self.options.engineChoiceFromGUI()
        self.options.testConnectionButton.enabled = False
        self.options.showConnection(_("Connecting to {url}...").format(url=choice.url))
        try:
            slicer.util.getModuleLogic("SAMSegment").testConnection(choice, self.onConnectionTested)
        except SAMSegmentError as error:
            self.onConnectionTested(None, str(error))

    def onConnectionTested(self, health, problem):
        """``health`` (SAMSegmentLib.protocol.health.Health) when the server answered, else the
        ``problem`` in words."""
        if self.options is None:
            return
        self.options.testConnectionButton.enabled = True
        if health is None:
            self.options.showConnection(problem, error=True)
            return
        text = _("Connected: protocol v{protocol}, engine {engine}, models {models}; round trip {milliseconds} ms.")
        self.options.showConnection(
            text.format(
                protocol=health.protocol,
                engine=health.engine,
                models=", ".join(health.models),
                milliseconds=f"{health.round_trip_ms:.0f}",
            )
        )
        if self.session is not None and not self.session.modelReady and self.options.engineChoiceFromGUI().remote:
            self._loadModel()  # the server was not there when the session started: try again now

    def onModelChanged(self):
        self.updateMRMLFromGUI()
        self.options.updateModelButtons()
        if self.session is not None:
            self._loadModel()
        elif self.startFailed and self.scriptedEffect.active():
            self._startSession()
        self.updateButtons()

    def onVolumeOptionsChanged(self):
        self.updateMRMLFromGUI()
        if self.session is not None:
            self._sendVolume()
            self._drawAllPrompts()

    def _engineIntensity(self):
        parameterNode = self.scriptedEffect.parameterSetNode()
        volumeNode = parameterNode.GetSourceVolumeNode() if parameterNode else None
        return engineIntensity(self.scriptedEffect.parameter("IntensityPreset"), volumeNode)

    def _sendVolume(self):
        # The same key for the same voxels: embeddings are cached per key and intensity mapping.
        self.sentIntensity = self._engineIntensity()
        self.session.setVolume(
            self.sentIntensity,
            volumeKey=self.volumeKey,
            memoryPolicy=self.scriptedEffect.parameter("MemoryPolicy"),
        )

    def onDownload(self):
        if self.session is None:
            self.options.status(_("Select a source volume first."), error=True)
            return
        if self.options.downloadProgress.visible:
            self.session.cancelDownload()
            return
        self.session.download(self.scriptedEffect.parameter("Model"))
        self.options.downloadButton.text = _("Cancel download")
        self.options.downloadProgress.visible = True

    def _confirmSegmentVisible(self):
        """Slicer asks before an effect edits a hidden segment (qSlicerSegmentEditorAbstractEffect::
        confirmCurrentSegmentVisible); Cancel stops the edit."""
        return self.scriptedEffect.confirmCurrentSegmentVisible() != self.scriptedEffect.NotConfirmed

    def onApply(self):
        if self.session is None or not self._confirmSegmentVisible():
            return
        try:
            self.session.apply(self.scriptedEffect.parameterSetNode().GetSelectedSegmentID())
        except (ValueError, KeyError) as error:
            self.options.status(str(error), error=True)
        self._drawAllPrompts()
        self.updateButtons()

    def onClearPrompts(self):
        if self.session is None:
            return
        self.session.clearPrompts()
        self.options.status("")
        self._drawAllPrompts()
        self.updateButtons()

    def onPropagate(self):
        if self.session is None or not self._confirmSegmentVisible():
            return
        sliceRange = None
        if self.options.limitRangeCheckBox.checked:
            sliceRange = (self.options.firstSliceSpinBox.value, self.options.lastSliceSpinBox.value)
        try:
            keptTo = self.session.propagate(
                self.scriptedEffect.parameterSetNode().GetSelectedSegmentID(),
                self.scriptedEffect.parameter("Direction"),
                sliceRange,
                keepSegmentedSlices=self.options.keepSegmentedSlices,
            )
        except ValueError as error:
            self.options.status(str(error), error=True)
            return
        self.options.progressBar.value = 0
        self.options.progressBar.visible = True
        if keptTo is not None and keptTo != sliceRange:
            self.options.status(
                _(
                    "Propagating through slices {first} to {last}: the segment already holds the slices next to them."
                ).format(first=keptTo[0], last=keptTo[1])
            )
        else:
            self.options.status(_("Propagating..."))
        self.updateButtons()

    def onCancelPropagation(self):
        if self.session is None:
            return
        self.session.cancelPropagation()
        self.options.status(_("Cancelling after the current slice..."))

    def onSegmentEverything(self):
        if self.session is None or not self._confirmSegmentVisible():
            return
        sliceWidget = self.lastSliceWidget or slicer.app.layoutManager().sliceWidget("Red")
        width, height, _depth = sliceWidget.sliceLogic().GetSliceNode().GetDimensions()
        try:
            position = self._position(sliceWidget, (width // 2, height // 2))  # the slice in view
            self.session.segmentEverything(position.axis, position.index)
        except (ObliqueSliceError, OutsideVolumeError, ValueError) as error:
            self.options.status(str(error), error=True)
            return
        self.options.progressBar.value = 0
        self.options.progressBar.visible = True
        self.options.status(_("Segmenting everything on slice {index}...").format(index=position.index))
        self.updateButtons()

    def onCancelEverything(self):
        if self.session is None:
            return
        self.session.cancelEverything()
        self.options.status(_("Cancelling..."))

    # ----- worker answers -----

    def onPoll(self):
        for finishing in list(self.finishing):
            self._showAll(self._process(finishing))
            if finishing.finished:
                self.finishing.remove(finishing)
        if self.session is None:
            if not self.finishing:
                self.pollTimer.stop()
            return
        notices = self._process(self.session)
        self._showAll(notices)
        if notices and self.session is not None:
            self._drawAllPrompts()
            self.updateButtons()

    def _process(self, session):
        try:
            return session.processMessages()
        except Exception as error:
            logging.exception("SAM could not apply a result")
            self.options.status(str(error), error=True)
            self.options.progressBar.visible = False
            return []

    def _showAll(self, notices):
        for notice in notices:
            self._show(notice)

    def _show(self, notice):
        from SAMSegmentMRML.session import NoticeKind

        if notice.kind is NoticeKind.OUT_OF_MEMORY:
            self._offerCpu(notice.text)
            return
        if notice.kind is NoticeKind.MODEL:
            slicer.util.getModuleLogic("SAMSegment").loadedModel = (
                self.scriptedEffect.parameter("Model"),
                self.scriptedEffect.parameter("Device"),
            )
        self.options.showNotice(notice, self.session)

    def _offerCpu(self, text):
        onCpu = self.session is not None and self.session.modelDevice == "cpu"  # also with "auto" on a CPU
        if (
            not onCpu
            and self.scriptedEffect.parameter("Device") != "cpu"
            and slicer.util.confirmYesNoDisplay(
                text + "\n\n" + _("Switch SAM to the CPU (slower, but with the computer's memory)?")
            )
        ):
            self.scriptedEffect.setParameter("Device", "cpu")
            self.updateGUIFromMRML()
            self._loadModel()
        else:
            self.options.status(text, error=True)
