"""One request at a time for a panel: sent to the shared worker (after loading the model when it
needs one), polled from a timer, with a progress bar, a Cancel button and errors shown."""

import logging

import ctk
import qt
import slicer
from slicer.i18n import tr as _

from SAMSegmentEffect.settings import savedChoice
from SAMSegmentLib.intensity import AUTO_PRESET
from SAMSegmentMRML.display_intensity import DISPLAY_PRESET

POLL_INTERVAL_MS = 100


def chosenModel():
    """The model and device last chosen in the SAM effect (the panels use the same)."""
    return savedChoice("Model"), savedChoice("Device")


def chosenPreset():
    """The effect's intensity choice as an engine preset: the panels work on volumes of their own
    choosing, so "as displayed" becomes the engine's ``auto``."""
    preset = savedChoice("IntensityPreset")
    return AUTO_PRESET if preset == DISPLAY_PRESET else preset


def enginePackagesReady():
    """True when SAM's packages are installed, or the engine is a server (it has them); otherwise
    says so. Panels call it before importing engine code (which imports torch)."""
    from SAMSegmentEffect.dependencies import dependenciesSatisfied
    from SAMSegmentEffect.settings import engineChoice

    if engineChoice().remote or dependenciesSatisfied():
        return True
    slicer.util.errorDisplay(_("SAM's Python packages are not installed yet: click Install in this module first."))
    return False


class WorkerJob:
    def __init__(self, runButton, cancelButton, progressBar, statusLabel):
        self.runButton, self.cancelButton = runButton, cancelButton
        self.progressBar, self.statusLabel = progressBar, statusLabel
        self.client = None
        self.requestId = None
        self.onResult = None
        self.progressBar.visible = False
        self.cancelButton.enabled = False
        self.timer = qt.QTimer()
        self.timer.setInterval(POLL_INTERVAL_MS)
        self.connections = []  # (signal, slot) made by this job and its panel: cleanup() undoes them
        self.connect(self.cancelButton.clicked, self.cancel)
        self.connect(self.timer.timeout, self.poll)

    def connect(self, signal, slot):
        signal.connect(slot)
        self.connections.append((signal, slot))

    def cleanup(self):
        """Stop polling, cancel what runs and disconnect everything (the module widget's cleanup)."""
        self.timer.stop()
        if self.client is not None and self.running:
            self.client.cancel()
        for signal, slot in self.connections:
            signal.disconnect(slot)
        self.connections = []

    @property
    def running(self):
        return self.requestId is not None

    def start(self, request, onResult, needsModel=True, status=""):
        """Send ``request`` (after a LoadModel when ``needsModel`` and the worker holds another model);
        ``onResult`` gets its result value on the GUI thread. Returns False (and says why) when
        SAM's packages are not installed or the engine cannot start."""
        if not enginePackagesReady():
            return False
        from SAMSegmentLib.errors import SAMSegmentError
        from SAMSegmentLib.protocol import LoadModel

        logic = slicer.util.getModuleLogic("SAMSegment")
        if not logic.serves(self.client):  # none yet, or one of an engine the user replaced since
            try:
                self.client = logic.workerClient()  # the engine process starts with the first request
            except (ImportError, OSError, RuntimeError, SAMSegmentError) as error:
                logging.exception("The SAM engine could not start")
                slicer.util.errorDisplay(_("SAM could not start: {error}").format(error=error))
                return False
            self.client.on_messages = self.poll  # answers are shown as soon as they arrive
        if needsModel and logic.loadedModel != chosenModel():
            self.client.submit(LoadModel(*chosenModel()))
        self.requestId = self.client.submit(request)
        self.onResult = onResult
        self.progressBar.setRange(0, 0)  # busy until the first progress report
        self.progressBar.visible = True
        self.runButton.enabled, self.cancelButton.enabled = False, True
        self.statusLabel.text = status
        self.timer.start()
        return True

    def cancel(self):
        if self.client is not None:
            self.client.cancel()
            self.statusLabel.text = _("Cancelling...")

    def poll(self):
        from SAMSegmentLib.protocol import MessageKind

        for message in self.client.poll():
            kind = message.kind
            if message.request_id != self.requestId:  # the model loaded first
                if kind is MessageKind.RESULT:
                    slicer.util.getModuleLogic("SAMSegment").loadedModel = chosenModel()
                elif kind in (MessageKind.ERROR, MessageKind.OUT_OF_MEMORY):
                    self.statusLabel.text = message.text  # the request itself fails next, saying why
            elif kind is MessageKind.PROGRESS:
                done, total = message.value
                self.progressBar.setRange(0, total)
                self.progressBar.value = done if total else 0
                if message.text:
                    self.statusLabel.text = message.text
            elif kind.final:
                self._finish(message)

    def _finish(self, message):
        from SAMSegmentLib.protocol import MessageKind

        self.timer.stop()
        self.requestId = None
        self.progressBar.visible = False
        self.runButton.enabled, self.cancelButton.enabled = True, False
        if message.kind is MessageKind.RESULT:
            self.statusLabel.text = ""
            try:
                self.onResult(message.value)
            except Exception as error:
                logging.exception("SAMSegment could not apply a result")
                slicer.util.errorDisplay(_("The result could not be added: {error}").format(error=error))
        elif message.kind is MessageKind.CANCELLED:
            self.statusLabel.text = _("Cancelled; nothing was changed.")
        else:
            self.statusLabel.text = ""
            slicer.util.errorDisplay(message.text)


def jobControls(layout, runText):
    """Run and Cancel buttons, a progress bar and a status line added to a form ``layout``."""
    runButton = qt.QPushButton(runText)
    cancelButton = qt.QPushButton(_("Cancel"))
    buttons = qt.QHBoxLayout()
    buttons.addWidget(runButton, 1)
    buttons.addWidget(cancelButton)
    layout.addRow(buttons)
    progressBar = qt.QProgressBar()
    layout.addRow(progressBar)
    statusLabel = qt.QLabel()
    statusLabel.wordWrap = True
    layout.addRow(statusLabel)
    return runButton, WorkerJob(runButton, cancelButton, progressBar, statusLabel)


def volumeSelector(toolTip):
    selector = slicer.qMRMLNodeComboBox()
    selector.nodeTypes = ["vtkMRMLScalarVolumeNode"]
    selector.addEnabled = selector.removeEnabled = selector.noneEnabled = False
    selector.setMRMLScene(slicer.mrmlScene)
    selector.toolTip = toolTip
    return selector


def segmentSelector(toolTip):
    selector = slicer.qMRMLSegmentSelectorWidget()
    selector.setMRMLScene(slicer.mrmlScene)
    selector.toolTip = toolTip
    return selector


def axisSelector():
    """Slice direction; item data is the engine's Axis value."""
    selector = qt.QComboBox()
    for value, label in (("axial", _("Axial")), ("coronal", _("Coronal")), ("sagittal", _("Sagittal"))):
        selector.addItem(label, value)
    return selector


def collapsedSection(parentLayout, title):
    """A collapsed section added to ``parentLayout``; returns its form layout."""
    button = ctk.ctkCollapsibleButton()
    button.text = title
    button.collapsed = True
    parentLayout.addWidget(button)
    return qt.QFormLayout(button)


def sliceSpinBoxes():
    """First and last slice spin boxes, and a row holding them ("first to last")."""
    first, last = qt.QSpinBox(), qt.QSpinBox()
    for spinBox in (first, last):
        spinBox.maximum = 10000
    row = qt.QHBoxLayout()
    for widget in (first, qt.QLabel(_("to")), last):
        row.addWidget(widget)
    return first, last, row
