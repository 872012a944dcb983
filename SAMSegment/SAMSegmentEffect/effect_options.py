"""The SAM effect's options panel: its widgets, their saved defaults, and which buttons are enabled.

The effect connects the widgets' signals to its own handlers; this class only builds, fills and
syncs them with the effect's parameters (and the user's settings, so choices persist).

Combo boxes show translated labels and keep the parameter value as item data, so parameters
never depend on the user's language (the convention of Slicer's own effects)."""

import qt
from slicer.i18n import tr as _

from SAMSegmentEffect.settings import (
    EFFECT_CHOICES,
    LOCAL_ENGINE,
    SERVER_ENGINE,
    EngineChoice,
    engineChoice,
    saveChoice,
    savedChoice,
)
from SAMSegmentLib.checkpoints import CheckpointStore
from SAMSegmentLib.intensity import PRESETS
from SAMSegmentLib.registry import MODELS, Family
from SAMSegmentMRML.display_intensity import DISPLAY_PRESET
from SAMSegmentMRML.model_choices import modelChoices, modelLabel


def engineChoices():
    """(setting value, label) of each kind of engine."""
    return ((LOCAL_ENGINE, _("This computer")), (SERVER_ENGINE, _("Server")))


def deviceChoices():
    """(parameter value, label) of each device."""
    return (
        ("auto", _("Automatic")),
        ("cpu", _("CPU")),
        ("cuda", _("NVIDIA GPU (CUDA)")),
        ("mps", _("Apple GPU (MPS)")),
    )


def directionChoices():
    return (("both", _("Both directions")), ("forward", _("Forward")), ("backward", _("Backward")))


def presetChoices():
    labels = {
        "auto": _("Automatic"),
        "soft_tissue": _("CT soft tissue"),
        "lung": _("CT lung"),
        "bone": _("CT bone"),
        "brain": _("CT brain"),
        "liver": _("CT liver"),
        "percentile": _("Percentiles (MR and others)"),
    }
    return ((DISPLAY_PRESET, _("As displayed (window/level)")), *((name, labels.get(name, name)) for name in PRESETS))


def memoryChoices():
    return (("recent", _("Recent frames")), ("self-sorting", _("Self-sorting (MedSAM-2)")))


def setMRMLDefaults(scriptedEffect):
    """The effect's parameter defaults (the user's last choices): parameters only, no widget, since
    qMRMLSegmentEditorWidget::updateEffectList can call setMRMLDefaults() before setupOptionsFrame()."""
    for name in EFFECT_CHOICES:
        scriptedEffect.setParameterDefault(name, savedChoice(name))


def _fillCombo(comboBox, choices):
    for value, label in choices:
        comboBox.addItem(label, value)


def _selectData(comboBox, value):
    wasBlocked = comboBox.blockSignals(True)
    comboBox.currentIndex = max(0, comboBox.findData(value))
    comboBox.blockSignals(wasBlocked)


class EffectOptions:
    def __init__(self, scriptedEffect):
        self.scriptedEffect = scriptedEffect

    def setup(self):
        effect = self.scriptedEffect
        self._setupEngine()
        self.modelSelector = qt.QComboBox()
        self.modelSelector.toolTip = _("Segment Anything model and whether its weights are on this computer.")
        self.downloadButton = qt.QPushButton(_("Download"))
        self.downloadProgress = qt.QProgressBar()
        self.downloadProgress.visible = False
        modelRow = qt.QHBoxLayout()
        modelRow.addWidget(self.modelSelector, 1)
        modelRow.addWidget(self.downloadButton)
        effect.addLabeledOptionsWidget(_("Model:"), modelRow)
        effect.addOptionsWidget(self.downloadProgress)

        # Shown while SAM's Python packages are missing: installing starts only from this button.
        self.installButton = qt.QPushButton(_("Install SAM's packages"))
        self.installButton.toolTip = _(
            "Downloads and installs PyTorch (through the PyTorch extension) and the other Python packages SAM "
            "needs. This can take several minutes."
        )
        self.installButton.visible = False
        effect.addOptionsWidget(self.installButton)

        self.deviceSelector = qt.QComboBox()
        _fillCombo(self.deviceSelector, deviceChoices())
        effect.addLabeledOptionsWidget(_("Device:"), self.deviceSelector)
        self.presetSelector = qt.QComboBox()
        _fillCombo(self.presetSelector, presetChoices())
        self.presetSelector.toolTip = _(
            "How voxel values are scaled for the model: as the volume is displayed (the model segments what you "
            "see), a CT window, or percentiles. Automatic adapts to the structure you prompt."
        )
        effect.addLabeledOptionsWidget(_("Intensity:"), self.presetSelector)
        self.memorySelector = qt.QComboBox()
        _fillCombo(self.memorySelector, memoryChoices())
        self.memorySelector.toolTip = _(
            "Which slices SAM 2 models remember while propagating: the most recent ones, or a bank of "
            "the most confident and most varied ones (MedSAM-2). Changing it starts their memory over."
        )
        effect.addLabeledOptionsWidget(_("Memory:"), self.memorySelector)

        self.applyButton = qt.QPushButton(_("Apply"))
        self.applyButton.toolTip = _("Write the preview into the selected segment on the prompted slice.")
        self.clearButton = qt.QPushButton(_("Clear prompts"))
        actions = qt.QHBoxLayout()
        actions.addWidget(self.applyButton)
        actions.addWidget(self.clearButton)
        effect.addOptionsWidget(actions)

        self.directionSelector = qt.QComboBox()
        _fillCombo(self.directionSelector, directionChoices())
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
        effect.addLabeledOptionsWidget(_("Propagate:"), propagation)
        self.keepSegmentedCheckBox = qt.QCheckBox(_("Keep segmented slices"))
        self.keepSegmentedCheckBox.toolTip = _(
            "Prompts on a slice the segment does not hold yet propagate only until the slices it already "
            "holds, so a gap (where an earlier propagation stopped early) is filled and the slices already "
            "segmented stay as they are. Prompts on a slice it holds propagate and replace, as without this."
        )
        effect.addOptionsWidget(self.keepSegmentedCheckBox)

        self.everythingButton = qt.QPushButton(_("Segment everything"))
        self.everythingButton.toolTip = _(
            "Find every structure on the slice shown in the view you last clicked in (else the red view) "
            "and add each as a new segment. One undo step removes them all."
        )
        self.cancelEverythingButton = qt.QPushButton(_("Cancel"))
        everything = qt.QHBoxLayout()
        everything.addWidget(self.everythingButton, 1)
        everything.addWidget(self.cancelEverythingButton)
        effect.addLabeledOptionsWidget(_("This slice:"), everything)

        self.progressBar = qt.QProgressBar()
        self.progressBar.visible = False
        effect.addOptionsWidget(self.progressBar)
        self.statusLabel = qt.QLabel()
        self.statusLabel.wordWrap = True
        effect.addOptionsWidget(self.statusLabel)

    def _setupEngine(self):
        """Where SAM runs: this computer (an engine process Slicer starts) or a server, with its
        address, token and a connection test. Kept in the application settings, not the scene."""
        effect = self.scriptedEffect
        self.engineSelector = qt.QComboBox()
        _fillCombo(self.engineSelector, engineChoices())
        self.engineSelector.toolTip = _(
            "Run SAM on this computer, or on a server (for example a department's GPU server) shared by "
            "several Slicer users."
        )
        effect.addLabeledOptionsWidget(_("Engine:"), self.engineSelector)
        self.serverFrame = qt.QFrame()
        serverLayout = qt.QFormLayout(self.serverFrame)
        self.serverUrlEdit = qt.QLineEdit()
        self.serverUrlEdit.placeholderText = "http://sam-server.example.org:8470"
        self.serverUrlEdit.toolTip = _("The address of the SAM server, as its administrator gave it.")
        serverLayout.addRow(_("Address:"), self.serverUrlEdit)
        self.serverTokenEdit = qt.QLineEdit()
        self.serverTokenEdit.echoMode = qt.QLineEdit.Password
        self.serverTokenEdit.toolTip = _(
            "The server's access token. It is kept in Slicer's settings on this computer, never in the scene."
        )
        serverLayout.addRow(_("Token:"), self.serverTokenEdit)
        self.testConnectionButton = qt.QPushButton(_("Test connection"))
        self.connectionLabel = qt.QLabel()
        self.connectionLabel.wordWrap = True
        serverLayout.addRow(self.testConnectionButton)
        serverLayout.addRow(self.connectionLabel)
        effect.addOptionsWidget(self.serverFrame)
        self.showEngineChoice(engineChoice())

    def showEngineChoice(self, choice):
        """Show ``choice`` (the saved one) without calling the handlers."""
        _selectData(self.engineSelector, choice.kind)
        for edit, text in ((self.serverUrlEdit, choice.url), (self.serverTokenEdit, choice.token)):
            wasBlocked = edit.blockSignals(True)
            edit.text = text
            edit.blockSignals(wasBlocked)
        self.serverFrame.visible = choice.remote

    def engineChoiceFromGUI(self):
        return EngineChoice(
            self.engineSelector.currentData or LOCAL_ENGINE,
            self.serverUrlEdit.text.strip(),
            self.serverTokenEdit.text.strip(),
        )

    def showConnection(self, text, error=False):
        self.connectionLabel.text = text
        self.connectionLabel.setStyleSheet("color: #c0392b" if error else "")

    def updateGUIFromMRML(self):
        """Cheap: selects the items of the current parameters (the model list is filled on activation)."""
        _selectData(self.modelSelector, self.scriptedEffect.parameter("Model"))
        _selectData(self.deviceSelector, self.scriptedEffect.parameter("Device"))
        _selectData(self.presetSelector, self.scriptedEffect.parameter("IntensityPreset"))
        _selectData(self.directionSelector, self.scriptedEffect.parameter("Direction"))
        _selectData(self.memorySelector, self.scriptedEffect.parameter("MemoryPolicy"))
        wasBlocked = self.keepSegmentedCheckBox.blockSignals(True)
        self.keepSegmentedCheckBox.checked = self.keepSegmentedSlices
        self.keepSegmentedCheckBox.blockSignals(wasBlocked)

    @property
    def keepSegmentedSlices(self):
        return self.scriptedEffect.parameter("KeepSegmentedSlices") == "1"

    def updateMRMLFromGUI(self):
        values = {
            "Model": self.modelSelector.currentData,
            "Device": self.deviceSelector.currentData,
            "IntensityPreset": self.presetSelector.currentData,
            "MemoryPolicy": self.memorySelector.currentData,
            "Direction": self.directionSelector.currentData,
            "KeepSegmentedSlices": "1" if self.keepSegmentedCheckBox.checked else "0",
        }
        for name, value in values.items():
            if value:
                self.scriptedEffect.setParameter(name, value)
                saveChoice(name, value)

    def fillModelSelector(self):
        """Registry models and the user's fine-tuned ones, with where their weights are. Lists the
        models folder: called on activation and when a download or fine-tuning ends, not on every
        parameter change. With a server, its weights and fine-tuned models are the server's: the
        registry's models are listed without a local state, and Download asks the server."""
        store = None if engineChoice().remote else CheckpointStore()
        specs = {spec.name: spec for spec in (modelChoices(store) if store is not None else MODELS.values())}
        self._specs, self._store = specs, store
        wasBlocked = self.modelSelector.blockSignals(True)
        self.modelSelector.clear()
        for name, spec in specs.items():
            self.modelSelector.addItem(modelLabel(spec, store), name)
        self.modelSelector.currentIndex = max(0, self.modelSelector.findData(self.scriptedEffect.parameter("Model")))
        self.modelSelector.blockSignals(wasBlocked)
        self.updateModelButtons()

    def modelSpec(self, name):
        """The listed model called ``name``, or None when the list does not hold it."""
        return getattr(self, "_specs", {}).get(name)

    def updateModelButtons(self):
        specs, store = getattr(self, "_specs", {}), getattr(self, "_store", None)
        spec = specs.get(self.modelSelector.currentData)
        if spec is None:
            needsWeights = False
        elif store is None:  # a server's weights: it knows whether it has them
            needsWeights = not spec.embedded
        else:
            needsWeights = store.state(spec) == "not downloaded"
        self.downloadButton.enabled = needsWeights
        self.memorySelector.enabled = spec is not None and spec.family is Family.SAM2

    def updateButtons(self, session):
        ready = session is not None and session.modelReady
        busy = session is not None and (session.propagating or session.segmentingEverything)
        self.applyButton.enabled = ready and session.canApply and not busy
        self.clearButton.enabled = session is not None and not session.prompts.empty
        self.propagateButton.enabled = ready and not session.prompts.empty and not busy
        self.cancelPropagationButton.enabled = session is not None and session.propagating
        self.everythingButton.enabled = ready and not busy
        self.cancelEverythingButton.enabled = session is not None and session.segmentingEverything
        self.firstSliceSpinBox.enabled = self.lastSliceSpinBox.enabled = self.limitRangeCheckBox.checked

    def status(self, text, error=False):
        self.statusLabel.text = text
        self.statusLabel.setStyleSheet("color: #c0392b" if error else "")

    def showNotice(self, notice, session):
        """Show what the session reports (``SAMSegmentMRML.session.Notice``) in the panel."""
        from SAMSegmentMRML.session import NoticeKind

        kind = notice.kind
        if kind is NoticeKind.PROGRESS:
            done, planned = notice.progress
            self.progressBar.maximum = max(1, planned)
            self.progressBar.value = done
        elif kind is NoticeKind.DOWNLOAD:
            done, total = notice.progress
            self.downloadProgress.maximum = 1000
            self.downloadProgress.value = int(1000 * done / max(1, total))
        else:
            self.status(notice.text, error=kind is NoticeKind.ERROR)
        if kind in (NoticeKind.WRITTEN, NoticeKind.ERROR, NoticeKind.STATUS, NoticeKind.DOWNLOADED):
            self.progressBar.visible = session is not None and (session.propagating or session.segmentingEverything)
            self.downloadProgress.visible = False
            self.downloadButton.text = _("Download")
        if kind is NoticeKind.DOWNLOADED:
            self.fillModelSelector()  # the model's weights are here now
