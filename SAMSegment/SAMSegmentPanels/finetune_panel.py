"""Fine-tune the chosen model's mask decoder on volumes the user has segmented, and save it as a new
model that the SAM effect lists like any other."""

import qt
import slicer
from slicer.i18n import tr as _

from SAMSegmentPanels.worker_job import (
    axisSelector,
    chosenModel,
    chosenPreset,
    collapsedSection,
    enginePackagesReady,
    jobControls,
    sliceSpinBoxes,
    volumeSelector,
)

HOLD_OUT_SLICES, HOLD_OUT_LAST_CASE = "slices", "lastCase"


class FinetunePanel:
    def __init__(self, parentLayout, onModelSaved):
        """``onModelSaved(name)`` is called once a fine-tuned model has been saved."""
        self.onModelSaved = onModelSaved
        layout = collapsedSection(parentLayout, _("Fine-tune on your segmentations"))
        self.casesLayout = qt.QFormLayout()
        self.cases = []  # (volume selector, segmentation selector)
        layout.addRow(self.casesLayout)
        addCaseButton = qt.QPushButton(_("Add a labelled volume"))
        self.addCaseButton = addCaseButton
        layout.addRow(addCaseButton)
        self.addCase()
        self.structuresEdit = qt.QLineEdit()
        self.structuresEdit.placeholderText = _("segment names, e.g. liver, spleen")
        layout.addRow(_("Structures:"), self.structuresEdit)
        self.axisSelector = axisSelector()
        layout.addRow(_("Slices along:"), self.axisSelector)
        self.splitSelector = qt.QComboBox()
        self.splitSelector.addItem(_("Hold out slices of every volume"), HOLD_OUT_SLICES)
        self.splitSelector.addItem(_("Hold out the last volume"), HOLD_OUT_LAST_CASE)
        self.firstSpinBox, self.lastSpinBox, split = sliceSpinBoxes()
        split.insertWidget(0, self.splitSelector)
        layout.addRow(_("Validation:"), split)
        self.epochsSpinBox = qt.QSpinBox()
        self.epochsSpinBox.setRange(1, 200)
        self.epochsSpinBox.value = 5
        layout.addRow(_("Epochs:"), self.epochsSpinBox)
        self.nameEdit = qt.QLineEdit()
        self.nameEdit.placeholderText = _("name of the new model, e.g. litemedsam-liver")
        layout.addRow(_("New model:"), self.nameEdit)
        runButton, self.job = jobControls(layout, _("Fine-tune"))
        self.job.connect(self.addCaseButton.clicked, self.addCase)
        runButton.toolTip = _(
            "Trains the mask decoder of the model chosen in the SAM effect; the encoders stay frozen."
        )
        self.job.connect(runButton.clicked, self.onRun)

    def cleanup(self):
        self.job.cleanup()

    def addCase(self):
        volume = volumeSelector(_("A volume with the structures segmented."))
        segmentation = slicer.qMRMLNodeComboBox()
        segmentation.nodeTypes = ["vtkMRMLSegmentationNode"]
        segmentation.addEnabled = segmentation.removeEnabled = segmentation.noneEnabled = False
        segmentation.setMRMLScene(slicer.mrmlScene)
        row = qt.QHBoxLayout()
        row.addWidget(volume, 1)
        row.addWidget(segmentation, 1)
        self.casesLayout.addRow(_("Volume {number}:").format(number=len(self.cases)), row)
        self.cases.append((volume, segmentation))

    def onRun(self):
        if not enginePackagesReady():
            return
        from SAMSegmentLib.errors import SAMSegmentError
        from SAMSegmentLib.protocol import FineTune
        from SAMSegmentLib.research.types import FinetuneOptions, ValidationSplit
        from SAMSegmentMRML.research_inputs import labelledCase

        structures = [name.strip() for name in self.structuresEdit.text.split(",") if name.strip()]
        chosen = [(volume.currentNode(), segmentation.currentNode()) for volume, segmentation in self.cases]
        chosen = [pair for pair in chosen if None not in pair]
        try:
            if not chosen:
                raise ValueError(_("Choose at least one volume and its segmentation."))
            cases, records = zip(*(labelledCase(volume, segmentation, structures) for volume, segmentation in chosen))
            if self.splitSelector.currentData == HOLD_OUT_SLICES:
                split = ValidationSplit(slices=range(self.firstSpinBox.value, self.lastSpinBox.value + 1))
            else:
                split = ValidationSplit(cases=frozenset({len(cases) - 1}))
            options = FinetuneOptions(epochs=self.epochsSpinBox.value)
        except (ValueError, KeyError, SAMSegmentError) as error:
            slicer.util.errorDisplay(str(error))
            return
        model, device = chosenModel()
        request = FineTune(
            model,
            self.nameEdit.text.strip(),
            list(cases),
            structures,
            split,
            options,
            axis=self.axisSelector.currentData,
            intensity=chosenPreset(),
            device=device,
            data=list(records),
        )
        status = _("Fine-tuning {model}...").format(model=model)
        self.job.start(request, self._saved, needsModel=False, status=status)

    def _saved(self, tuned):
        report = tuned.report
        self.job.statusLabel.text = _(
            "Saved {name}. Validation Dice {before:.3f} -> {after:.3f} (tight boxes {tightBefore:.3f} -> "
            "{tightAfter:.3f}). Choose it in the SAM effect's model list."
        ).format(
            name=tuned.name,
            before=report.before.mean,
            after=report.after.mean,
            tightBefore=report.tight_before.mean,
            tightAfter=report.tight_after.mean,
        )
        self.onModelSaved(tuned.name)
