"""SAMSegment: Segment Anything models (SAM, HQ-SAM, LiteMedSAM, SAM 2) in the Segment Editor.

Importing this module never imports torch or installs anything: the Install button (in the SAM
effect or in this module) installs what is missing, after asking.

This file must load on any Slicer (even 5.8, whose Python is 3.9) to say which version SAMSegment
needs: everything else is imported only once the version check has passed.
"""

import logging
import os
import sys

import qt
import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

# vtkSlicerSegmentEditorLogic (used by the effect and its tests) appeared in Slicer 5.10, whose
# Python is 3.12 (tomllib, zip(strict=) and the other 3.10+/3.11+ features the engine uses).
MINIMUM_SLICER_VERSION = (5, 10)


def slicerVersionSupported():
    return (slicer.app.majorVersion, slicer.app.minorVersion) >= MINIMUM_SLICER_VERSION


def unsupportedVersionMessage():
    return _(
        "SAMSegment needs 3D Slicer {required} or later; this is Slicer {current}. Install a current Slicer "
        "release from https://download.slicer.org to use the SAM effect."
    ).format(
        required="{}.{}".format(*MINIMUM_SLICER_VERSION),
        current=f"{slicer.app.majorVersion}.{slicer.app.minorVersion}",
    )


def _addEngineToPath():
    """Find SAMSegmentLib: installed beside this file, or one folder up in a source checkout; the
    folder holding it (the engine process gets it on its path too)."""
    here = os.path.dirname(os.path.abspath(__file__))
    for folder in (here, os.path.dirname(here)):
        if os.path.isdir(os.path.join(folder, "SAMSegmentLib")):
            if folder not in sys.path:
                sys.path.append(folder)
            return folder
    return here


ENGINE_FOLDER = _addEngineToPath()


class SAMSegment(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SAMSegment")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = ["Segmentations"]
        self.parent.contributors = ["SAMSegment contributors"]
        self.parent.helpText = _(
            "Adds the <b>SAM</b> effect to the Segment Editor: click points or drag a box in a slice view, "
            "check the preview, Apply it or propagate it through the volume. Models: LiteMedSAM (included, "
            "runs on a CPU, boxes), MobileSAM (runs on a CPU, points and boxes), SAM, HQ-SAM, SAM 2.1 and "
            "MedSAM2 (with MedSAM-2's self-sorting memory), downloaded on request. This module manages the "
            "models and holds the research panels: segment everything on a slice, prior maps, mask-guided "
            "registration and fine-tuning a mask decoder."
        )
        self.parent.helpText += self.getDefaultModuleDocumentationLink()
        self.parent.acknowledgementText = _(
            "Uses Segment Anything and SAM 2 (Meta AI), HQ-SAM (ETH Zurich/HKUST), MedSAM, LiteMedSAM and "
            "MedSAM2 (Bo Wang lab), MobileSAM (Kyung Hee University), PyTorch and the Slicer PyTorch extension."
        )
        if not slicerVersionSupported():
            logging.error(unsupportedVersionMessage())
            self.parent.helpText = "<p><b>" + unsupportedVersionMessage() + "</b></p>" + self.parent.helpText
            return  # the effect is not registered: it cannot run here
        slicer.app.connect("startupCompleted()", registerEffect)

    def getDefaultModuleDocumentationLink(self, docPage=None):
        """The extension's own documentation (its README), not Slicer's module pages."""
        url = "https://github.com/SAMSegment/SAMSegment#readme"
        return (
            "<p>"
            + _("For more information, see the {start}online documentation{end}.").format(
                start=f'<a href="{url}">', end="</a>"
            )
            + "</p>"
        )


def registerEffect():
    """Add the SAM effect to the Segment Editor's effect list.

    setPythonSource (qSlicerSegmentEditorScriptedEffect.cxx) takes the module name from the effect
    file's folder, SAMSegmentEffect, and uses the class it finds in sys.modules under that name;
    importing the package first provides it, so the effect file is not loaded a second time under
    the package's name (which would break the effect's own ``from SAMSegmentEffect...`` imports)."""
    import qSlicerSegmentationsEditorEffectsPythonQt as effects

    import SAMSegmentEffect  # noqa: F401 - see above; never imports torch

    effectPath = os.path.join(os.path.dirname(__file__), "SAMSegmentEffect", "SegmentEditorEffect.py")
    scriptedEffect = effects.qSlicerSegmentEditorScriptedEffect(None)
    scriptedEffect.setPythonSource(effectPath.replace("\\", "/"))
    scriptedEffect.self().register()


class SAMSegmentWidget(ScriptedLoadableModuleWidget):
    """Lists the models and where their weights are; segmenting happens in the Segment Editor."""

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        # slicer.util.getModuleLogic("SAMSegment") returns this: the one logic of the session.
        self.logic = SAMSegmentLogic()
        self.panels = []
        self.connections = []
        if not slicerVersionSupported():
            label = qt.QLabel(unsupportedVersionMessage())
            label.wordWrap = True
            self.layout.addWidget(label)
            self.layout.addStretch(1)
            return
        self.modelTable = qt.QTableWidget()
        self.modelTable.setColumnCount(3)
        self.modelTable.setHorizontalHeaderLabels([_("Model"), _("Weights"), _("Description")])
        self.modelTable.horizontalHeader().setStretchLastSection(True)
        self.modelTable.editTriggers = qt.QAbstractItemView.NoEditTriggers
        self.layout.addWidget(self.modelTable)

        self.installButton = qt.QPushButton(_("Install SAM's packages"))
        self.installButton.toolTip = _("Downloads and installs PyTorch and the other Python packages SAM needs.")
        self.layout.addWidget(self.installButton)
        self.statusLabel = qt.QLabel()
        self.statusLabel.wordWrap = True
        self.layout.addWidget(self.statusLabel)
        openEditorButton = qt.QPushButton(_("Open the Segment Editor"))
        self.layout.addWidget(openEditorButton)
        self.connections = [
            (self.installButton.clicked, self.onInstall),
            (openEditorButton.clicked, self.onOpenEditor),
        ]
        for signal, slot in self.connections:
            signal.connect(slot)

        # The panels import only Qt and Slicer here; engine code is imported when a panel runs.
        from SAMSegmentPanels.everything_panel import EverythingPanel
        from SAMSegmentPanels.finetune_panel import FinetunePanel
        from SAMSegmentPanels.prior_maps_panel import PriorMapsPanel
        from SAMSegmentPanels.registration_panel import RegistrationPanel

        # Kept: each panel owns its timer and its share of the worker.
        self.panels = [
            EverythingPanel(self.layout),
            PriorMapsPanel(self.layout),
            RegistrationPanel(self.layout),
            FinetunePanel(self.layout, lambda name: self.enter()),
        ]
        self.layout.addStretch(1)

    def enter(self):
        if not slicerVersionSupported():
            return
        from SAMSegmentEffect.dependencies import dependenciesSatisfied
        from SAMSegmentLib.checkpoints import CheckpointStore
        from SAMSegmentMRML.model_choices import modelChoices

        satisfied = dependenciesSatisfied()
        self.installButton.visible = not satisfied
        self.statusLabel.text = (
            "" if satisfied else _("SAM needs PyTorch and a few other Python packages: click Install.")
        )
        store = CheckpointStore()
        specs = modelChoices(store)
        self.modelTable.setRowCount(len(specs))
        for row, spec in enumerate(specs):
            state = f"{store.state(spec)} ({spec.size_bytes / 1e6:.0f} MB)"
            for column, text in enumerate((spec.name, state, spec.description)):
                self.modelTable.setItem(row, column, qt.QTableWidgetItem(text))
        self.modelTable.resizeColumnsToContents()

    def onInstall(self):
        from SAMSegmentEffect.dependencies import installDependencies

        if installDependencies():
            self.statusLabel.text = _("SAM's packages are installed.")
        self.enter()

    def onOpenEditor(self):
        slicer.util.selectModule("SegmentEditor")

    def cleanup(self):
        """Disconnects what setup() connected and stops the panels' jobs (called by Slicer before
        the module is unloaded or reloaded)."""
        for signal, slot in self.connections:
            signal.disconnect(slot)
        self.connections = []
        for panel in self.panels:
            panel.cleanup()
        self.panels = []


class SAMSegmentLogic(ScriptedLoadableModuleLogic):
    """Owns the SAM engine of this Slicer session, shared by every SAM effect and module panel.

    The engine never runs in Slicer's process: Slicer holds Python's GIL while its event loop runs,
    so inference on a Python thread here would crawl. It is what the user chose in the SAM effect's
    options (Slicer's settings, SAMSegmentEffect.settings): by default a process (SAMSegmentLib.service)
    started on first use with Slicer's Python (PythonSlicer), reached on the loopback interface with
    a fresh token, started again after a crash and stopped when Slicer quits; or a server someone
    else runs (a department's GPU server), reached at its address with its token, for which nothing
    is ever started here. Qt watches the sockets (QSocketNotifier), so an answer is shown as soon as
    it arrives.
    """

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self._engine = None  # SAMSegmentLib.protocol.engine_client.EngineClient
        self._hub = None
        self.engineChoice = None  # the SAMSegmentEffect.settings.EngineChoice the engine was made for
        self._retiring = []  # (client, hub, deadline) of engines replaced, finishing what they were asked
        self._probes = []  # (HealthProbe, onDone) of connection tests under way
        self._notifiers = {}  # (file descriptor, notifier type) -> qt.QSocketNotifier
        self._pumpTimer = None
        self.loadedModel = None  # (model name, device) the engine holds

    def engine(self):
        """The engine's client, made on first use (a local engine process starts with the first request)."""
        if self._engine is None:
            from SAMSegmentEffect.settings import engineChoice
            from SAMSegmentLib.protocol.clients import WorkerHub
            from SAMSegmentLib.protocol.engine_client import EngineClient

            choice = engineChoice()
            self._engine = EngineClient(engineSource(choice))
            self.engineChoice = choice
            self._hub = WorkerHub(self._engine)
            self.loadedModel = None
            self._startPumping()
        return self._engine

    def workerClient(self):
        """A share of the engine that sees only the answers to its own requests: the effect and each
        panel have one, so none takes another's answers. Its ``on_messages`` is called as soon as
        answers arrive."""
        self.engine()
        return self._hub.client()

    def serves(self, workerClient):
        """True when ``workerClient`` is a share of the engine in use (not of one replaced since)."""
        return workerClient is not None and self._hub is not None and workerClient.hub is self._hub

    def useEngine(self, choice):
        """Use the engine ``choice`` from the next request on. The engine in use finishes what it
        was asked (a cancelled propagation's finished slices) and is then closed: a server frees
        this Slicer's session, a process started here stops."""
        if self._engine is None or choice == self.engineChoice:
            return
        import time

        self._retiring.append((self._engine, self._hub, time.monotonic() + ENGINE_RETIRE_TIMEOUT_S))
        self._engine = self._hub = None
        self.engineChoice = None
        self.loadedModel = None
        self._onEngineActivity()

    def testConnection(self, choice, onDone):
        """Ask the server of ``choice`` whether it is there, without waiting: ``onDone(health, problem)``
        is called from the event loop with a SAMSegmentLib.protocol.health.Health, or None and what
        went wrong in words, within a few seconds. Raises SAMSegmentError for an invalid address."""
        from SAMSegmentLib.protocol.health import HealthProbe

        self._probes.append((HealthProbe(serverEndpoint(choice)), onDone))
        self._startPumping()
        self._onEngineActivity()

    def _startPumping(self):
        """Connecting, uploads and timeouts need turns even when no socket says so."""
        if self._pumpTimer is not None:
            return
        self._pumpTimer = qt.QTimer()
        self._pumpTimer.setInterval(ENGINE_PUMP_INTERVAL_MS)
        self._pumpTimer.timeout.connect(self._onEngineActivity)
        self._pumpTimer.start()
        slicer.app.connect("aboutToQuit()", self.shutdown)

    def _onEngineActivity(self, *unused):
        try:
            if self._hub is not None:
                self._hub.dispatch()
            self._pumpRetiring()
            self._pumpProbes()
        finally:
            self._watchSockets()

    def _pumpRetiring(self):
        import time

        for entry in list(self._retiring):
            client, hub, deadline = entry
            hub.dispatch()
            if client.idle:
                client.end_session()  # frees its memory on a server
            if client.session_ended or time.monotonic() > deadline:
                self._retiring.remove(entry)
                client.close()

    def _pumpProbes(self):
        for entry in list(self._probes):
            probe, onDone = entry
            probe.pump()
            if probe.done:
                self._probes.remove(entry)
                onDone(probe.health, None if probe.health is not None else connectionProblem(probe))

    def _watched(self):
        clients = [self._engine] if self._engine is not None else []
        clients += [client for client, _hub, _deadline in self._retiring]
        clients += [probe for probe, _onDone in self._probes]
        return [socket for client in clients for socket in client.watched()]

    def _watchSockets(self):
        """One QSocketNotifier per socket the engine clients wait on (reading, and writing while they
        send), so Qt's event loop wakes us when the engine answers."""
        wanted = set()
        for fd, write in self._watched():
            wanted.add((fd, qt.QSocketNotifier.Read))
            if write:
                wanted.add((fd, qt.QSocketNotifier.Write))
        for key in list(self._notifiers):
            if key not in wanted:
                notifier = self._notifiers.pop(key)
                notifier.setEnabled(False)
                notifier.activated.disconnect(self._onEngineActivity)
                notifier.deleteLater()
        for fd, kind in wanted - set(self._notifiers):
            notifier = qt.QSocketNotifier(fd, kind)
            notifier.activated.connect(self._onEngineActivity)
            self._notifiers[(fd, kind)] = notifier

    def shutdown(self):
        """Stop the engine (a server is asked to free this Slicer's session); returns at once
        (quitting Slicer never waits for it)."""
        if self._pumpTimer is None:
            return
        slicer.app.disconnect("aboutToQuit()", self.shutdown)
        self._pumpTimer.stop()
        self._pumpTimer.timeout.disconnect(self._onEngineActivity)
        self._pumpTimer = None
        engines = [client for client, _hub, _deadline in self._retiring]
        if self._engine is not None:
            engines.append(self._engine)
        for probe, _onDone in self._probes:
            probe.close()
        self._engine = self._hub = None
        self.engineChoice = None
        self._retiring, self._probes = [], []
        self._watchSockets()  # removes every notifier
        for engine in engines:
            engine.close()
        self.loadedModel = None


ENGINE_PUMP_INTERVAL_MS = 100
ENGINE_RETIRE_TIMEOUT_S = 60.0  # an engine replaced mid-propagation gets this long to send the last slices


def engineSource(choice):
    """Where the engine of ``choice`` (SAMSegmentEffect.settings.EngineChoice) is: a server, or the
    process this Slicer starts."""
    if not choice.remote:
        return engineProcess()
    from SAMSegmentLib.protocol.endpoints import FixedEndpoint

    return FixedEndpoint(serverEndpoint(choice))


def serverEndpoint(choice):
    from SAMSegmentLib.errors import SAMSegmentError
    from SAMSegmentLib.protocol.endpoints import Endpoint

    if not choice.url:
        raise SAMSegmentError(_("Enter the address of the SAM server (Engine: Server)."))
    try:
        return Endpoint.from_url(choice.url, choice.token)
    except ValueError as error:
        raise SAMSegmentError(_("The SAM server's address is not valid: {error}").format(error=error)) from None


def connectionProblem(probe):
    """Why the server a HealthProbe asked cannot be used, in the user's language."""
    from SAMSegmentLib.protocol import PROTOCOL_VERSION
    from SAMSegmentLib.protocol.answers import Problem

    url, detail = probe.endpoint.url, probe.detail
    if probe.problem is Problem.TOKEN_REFUSED:
        return _("The server at {url} refused the token: enter the token its administrator gave you.").format(url=url)
    if probe.problem is Problem.PROTOCOL_MISMATCH:
        return _("The server at {url} does not speak this SAMSegment's protocol version {version}: {detail}").format(
            url=url, version=PROTOCOL_VERSION, detail=detail
        )
    if probe.problem is Problem.REFUSED:
        return _("The server at {url} answered: {detail}").format(url=url, detail=detail)
    return _("The server at {url} cannot be reached: {detail}").format(url=url, detail=detail)


def engineProcess():
    """The engine process this Slicer starts: ``samsegment serve`` run by Slicer's own Python
    launcher (it sets up Slicer's library paths), else by this interpreter."""
    import shutil

    from SAMSegmentLib.service.launcher import EngineProcess

    return EngineProcess(python=shutil.which("PythonSlicer") or sys.executable, python_path=[ENGINE_FOLDER])


class SAMSegmentTest(ScriptedLoadableModuleTest):
    """Segments a synthetic volume through the Segment Editor and the SAM effect, as a user does.

    Waits in Qt's event loop (QEventLoop + QTimer), never with time.sleep: Slicer holds the GIL
    while its event loop idles, and a test that sleeps would hide what that does to the engine."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def tearDown(self):
        editor = getattr(self, "editorWidget", None)
        if editor is not None:
            editor.setActiveEffectByName("")  # deactivates the effect: its session stops
            editor.setMRMLSegmentEditorNode(None)
            editor.deleteLater()
            self.editorWidget = None
        slicer.mrmlScene.Clear()

    def runTest(self):
        for test in (
            self.test_promptApplyAndPropagate,
            self.test_propagationFillsTheGapAndKeepsSegmentedSlices,
            self.test_propagatingAnObjectKeepsTheSegmentsOtherObjects,
            self.test_segmentEverythingAndUndo,
        ):
            self.setUp()
            try:
                test()
            finally:
                self.tearDown()

    def _skipWithoutPackages(self):
        from SAMSegmentEffect.dependencies import dependenciesSatisfied, missingRequirements

        if not dependenciesSatisfied():
            self.skipTest("SAM's packages are not installed: " + ", ".join(missingRequirements()))

    def _waitUntil(self, condition, timeout=300.0, what=""):
        """Run Slicer's event loop (the effect's timers, the engine's answers) until ``condition()``."""
        import time

        deadline = time.monotonic() + timeout
        while not condition():
            self.assertLess(time.monotonic(), deadline, f"Timed out waiting for {what}")
            loop = qt.QEventLoop()
            qt.QTimer.singleShot(50, loop.quit)
            loop.exec()

    def _editorWithEffect(self, array):
        """The Segment Editor on ``array`` with one selected empty segment and the SAM effect active."""
        volumeNode = slicer.util.addVolumeFromArray(array, name="SAMTest")
        segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        segmentationNode.CreateDefaultDisplayNodes()
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
        segmentID = segmentationNode.GetSegmentation().AddEmptySegment("organ")
        editorNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
        self.editorWidget = slicer.qMRMLSegmentEditorWidget()
        self.editorWidget.setMRMLScene(slicer.mrmlScene)
        self.editorWidget.setMRMLSegmentEditorNode(editorNode)
        self.editorWidget.setSegmentationNode(segmentationNode)
        self.editorWidget.setSourceVolumeNode(volumeNode)
        editorNode.SetSelectedSegmentID(segmentID)
        self.editorWidget.setActiveEffectByName("SAM")
        scriptedEffect = self.editorWidget.activeEffect()
        self.assertIsNotNone(scriptedEffect, "The SAM effect is not registered in the Segment Editor")
        effect = scriptedEffect.self()
        self.assertIsNotNone(effect.session, effect.options.statusLabel.text)
        self._waitUntil(lambda: effect.session.modelReady, what="the model")
        return volumeNode, segmentationNode, segmentID, effect

    def test_promptApplyAndPropagate(self):
        self._skipWithoutPackages()
        import numpy as np

        from SAMSegmentLib.volume import Axis
        from SAMSegmentMRML.slice_views import SlicePosition

        # A bright ellipsoid in soft tissue, 12 slices.
        k, j, i = np.meshgrid(np.arange(12), np.arange(64), np.arange(64), indexing="ij")
        organ = ((k - 6) / 5.0) ** 2 + ((j - 32) / 14.0) ** 2 + ((i - 32) / 12.0) ** 2 < 1
        volumeNode, segmentationNode, segmentID, effect = self._editorWithEffect(
            np.where(organ, 160, 20).astype(np.int16)
        )
        box = (SlicePosition(Axis.AXIAL, 6, (16.0, 14.0)), SlicePosition(Axis.AXIAL, 6, (48.0, 50.0)))
        effect.session.setBox(*box)  # what a drag in a slice view does
        self._waitUntil(lambda: effect.session.canApply, what="the preview")
        effect.onApply()
        written = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentID, volumeNode) > 0
        dice = 2 * (written[6] & organ[6]).sum() / (written[6].sum() + organ[6].sum())
        self.assertGreater(dice, 0.8)
        self.assertFalse(written[5].any())

        effect.session.setBox(*box)
        effect.onPropagate()
        self._waitUntil(lambda: not effect.session.propagating, what="the propagation")
        written = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentID, volumeNode) > 0
        self.assertGreater(2 * (written & organ).sum() / (written.sum() + organ.sum()), 0.7)
        self.editorWidget.undo()
        afterUndo = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentID, volumeNode) > 0
        self.assertEqual(int(afterUndo[[0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11]].sum()), 0)
        self.delayDisplay("SAM test passed")

    def test_propagationFillsTheGapAndKeepsSegmentedSlices(self):
        """With "Keep segmented slices" (the default), prompts on a slice the segment misses
        propagate only up to the slices it holds."""
        self._skipWithoutPackages()
        import numpy as np

        from SAMSegmentLib.volume import Axis
        from SAMSegmentMRML.slice_views import SlicePosition

        k, j, i = np.meshgrid(np.arange(12), np.arange(64), np.arange(64), indexing="ij")
        organ = ((k - 6) / 5.0) ** 2 + ((j - 32) / 14.0) ** 2 + ((i - 32) / 12.0) ** 2 < 1
        volumeNode, segmentationNode, segmentID, effect = self._editorWithEffect(
            np.where(organ, 160, 20).astype(np.int16)
        )
        self.assertTrue(effect.options.keepSegmentedCheckBox.checked)
        effect.session.setBox(SlicePosition(Axis.AXIAL, 8, (16.0, 14.0)), SlicePosition(Axis.AXIAL, 8, (48.0, 50.0)))
        self._waitUntil(lambda: effect.session.canApply, what="the preview")
        effect.onApply()
        applied = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentID, volumeNode) > 0
        effect.session.setBox(SlicePosition(Axis.AXIAL, 4, (16.0, 14.0)), SlicePosition(Axis.AXIAL, 4, (48.0, 50.0)))
        effect.onPropagate()
        self._waitUntil(lambda: not effect.session.propagating, what="the propagation")
        written = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentID, volumeNode) > 0
        self.assertTrue(written[4:8].any(axis=(1, 2)).all())  # the gap up to the applied slice is filled
        self.assertTrue(np.array_equal(written[8:], applied[8:]))  # the applied slice kept, nothing past it
        self.delayDisplay("Gap filling test passed")

    def test_propagatingAnObjectKeepsTheSegmentsOtherObjects(self):
        """Two lesions in one segment: propagating the second keeps the first on the slices they share."""
        self._skipWithoutPackages()
        import numpy as np

        from SAMSegmentLib.volume import Axis
        from SAMSegmentMRML.slice_views import SlicePosition

        k, j, i = np.meshgrid(np.arange(12), np.arange(64), np.arange(64), indexing="ij")
        left = ((k - 6) / 5.0) ** 2 + ((j - 32) / 12.0) ** 2 + ((i - 16) / 10.0) ** 2 < 1
        right = ((k - 6) / 5.0) ** 2 + ((j - 32) / 12.0) ** 2 + ((i - 48) / 10.0) ** 2 < 1
        volumeNode, segmentationNode, segmentID, effect = self._editorWithEffect(
            np.where(left | right, 160, 20).astype(np.int16)
        )
        for x0, x1 in ((3.0, 29.0), (35.0, 61.0)):  # a box on each lesion, in turn
            effect.session.setBox(SlicePosition(Axis.AXIAL, 6, (x0, 18.0)), SlicePosition(Axis.AXIAL, 6, (x1, 46.0)))
            effect.onPropagate()
            self._waitUntil(lambda: not effect.session.propagating, what="the propagation")
        written = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentID, volumeNode) > 0
        for lesion, side in ((left, i < 32), (right, i >= 32)):
            found = written & side
            self.assertGreater(2 * (found & lesion).sum() / (found.sum() + lesion.sum()), 0.7)
        self.delayDisplay("Two objects in one segment test passed")

    def test_segmentEverythingAndUndo(self):
        """The effect's "Segment everything": new segments on one slice, removed by one undo."""
        self._skipWithoutPackages()
        import numpy as np

        _k, j, i = np.meshgrid(np.arange(4), np.arange(64), np.arange(64), indexing="ij")
        first = ((j - 20) / 10.0) ** 2 + ((i - 20) / 10.0) ** 2 < 1
        organs = first | (((j - 44) / 9.0) ** 2 + ((i - 44) / 12.0) ** 2 < 1)
        _volumeNode, segmentationNode, _segmentID, effect = self._editorWithEffect(
            np.where(organs, 160, 20).astype(np.int16)
        )
        from SAMSegmentLib.volume import Axis

        effect.session.segmentEverything(Axis.AXIAL, 2)
        self._waitUntil(lambda: not effect.session.segmentingEverything, what="segment everything")
        segmentation = segmentationNode.GetSegmentation()
        self.assertGreater(segmentation.GetNumberOfSegments(), 1)
        self.editorWidget.undo()
        self.assertEqual(segmentation.GetNumberOfSegments(), 1)
        self.delayDisplay("Segment everything test passed")
