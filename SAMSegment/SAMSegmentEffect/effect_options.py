"""The SAM effect's options panel: its widgets, their saved defaults, and which buttons are enabled.

The effect connects the widgets' signals to its own handlers; this class only builds, fills and
syncs them with the effect's parameters (and the user's settings, so choices persist)."""

import qt

from slicer.i18n import tr as _

from SAMSegmentLib.checkpoints import CheckpointStore
from SAMSegmentLib.intensity import PRESETS
from SAMSegmentLib.registry import Family
from SAMSegmentMRML.model_choices import modelChoices, modelLabel

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


class EffectOptions:
    def __init__(self, scriptedEffect):
        self.scriptedEffect = scriptedEffect

    def setup(self):
        effect = self.scriptedEffect
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

        self.deviceSelector = qt.QComboBox()
        self.deviceSelector.addItems(DEVICES)
        effect.addLabeledOptionsWidget(_("Device:"), self.deviceSelector)
        self.presetSelector = qt.QComboBox()
        self.presetSelector.addItems(PRESETS)
        self.presetSelector.toolTip = _("How voxel values are scaled for the model (CT windows or percentiles).")
        effect.addLabeledOptionsWidget(_("Intensity:"), self.presetSelector)
        self.memorySelector = qt.QComboBox()
        self.memorySelector.addItem(_("Recent frames"), "recent")
        self.memorySelector.addItem(_("Self-sorting (MedSAM-2)"), "self-sorting")
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
        effect.addLabeledOptionsWidget(_("Propagate:"), propagation)

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

    def setMRMLDefaults(self):
        for name, default in DEFAULTS.items():
            self.scriptedEffect.setParameterDefault(name, qt.QSettings().value(SETTINGS_PREFIX + name, default))

    def updateGUIFromMRML(self):
        self.fillModelSelector()
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

    def fillModelSelector(self):
        """Registry models and the user's fine-tuned ones, with where their weights are."""
        store = CheckpointStore()
        specs = {spec.name: spec for spec in modelChoices(store)}
        wasBlocked = self.modelSelector.blockSignals(True)
        self.modelSelector.clear()
        for name, spec in specs.items():
            self.modelSelector.addItem(modelLabel(spec, store), name)
        self.modelSelector.currentIndex = max(0, self.modelSelector.findData(self.scriptedEffect.parameter("Model")))
        self.modelSelector.blockSignals(wasBlocked)
        spec = specs.get(self.modelSelector.currentData)
        self.downloadButton.enabled = spec is not None and store.state(spec) == "not downloaded"
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
