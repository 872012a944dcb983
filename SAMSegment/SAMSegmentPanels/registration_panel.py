"""Register a moving volume to a fixed one through the same structure segmented in both (segment it
with the SAM effect first); the result is a linear transform node, optionally applied at once."""

import qt
import slicer
from slicer.i18n import tr as _

from SAMSegmentPanels.worker_job import (
    collapsedSection,
    enginePackagesReady,
    jobControls,
    segmentSelector,
    volumeSelector,
)


class RegistrationPanel:
    def __init__(self, parentLayout):
        layout = collapsedSection(parentLayout, _("Register two images through one structure"))
        self.fixedSelector = volumeSelector(_("The image that stays where it is."))
        layout.addRow(_("Fixed volume:"), self.fixedSelector)
        self.fixedSegmentSelector = segmentSelector(_("The structure, segmented on the fixed volume."))
        layout.addRow(_("Fixed structure:"), self.fixedSegmentSelector)
        self.movingSelector = volumeSelector(_("The image to move onto the fixed one (any modality)."))
        layout.addRow(_("Moving volume:"), self.movingSelector)
        self.movingSegmentSelector = segmentSelector(_("The same structure, segmented on the moving volume."))
        layout.addRow(_("Moving structure:"), self.movingSegmentSelector)
        self.affineCheckBox = qt.QCheckBox(_("Also fit scaling and shear (affine)"))
        layout.addRow(self.affineCheckBox)
        self.edgesCheckBox = qt.QCheckBox(_("Refine with image edges near the structure"))
        self.edgesCheckBox.checked = True
        layout.addRow(self.edgesCheckBox)
        self.applyCheckBox = qt.QCheckBox(_("Place the moving volume under the new transform"))
        self.applyCheckBox.checked = True
        layout.addRow(self.applyCheckBox)
        runButton, self.job = jobControls(layout, _("Register"))
        self.job.connect(runButton.clicked, self.onRun)

    def cleanup(self):
        self.job.cleanup()

    def onRun(self):
        if not enginePackagesReady():
            return
        from SAMSegmentLib.protocol import Register
        from SAMSegmentLib.research.registration import RegistrationOptions
        from SAMSegmentMRML.research_inputs import volumeAndMask

        fixedNode, movingNode = self.fixedSelector.currentNode(), self.movingSelector.currentNode()
        fixedSegmentation = self.fixedSegmentSelector.currentNode()
        movingSegmentation = self.movingSegmentSelector.currentNode()
        fixedSegment = self.fixedSegmentSelector.currentSegmentID()
        movingSegment = self.movingSegmentSelector.currentSegmentID()
        chosen = (fixedNode, movingNode, fixedSegmentation, movingSegmentation, fixedSegment, movingSegment)
        if not all(chosen):
            slicer.util.errorDisplay(_("Choose both volumes and the structure segmented on each."))
            return
        if fixedNode is movingNode:
            slicer.util.errorDisplay(_("Choose two different volumes."))
            return
        try:
            fixed, fixedMask = volumeAndMask(fixedNode, fixedSegmentation, fixedSegment)
            moving, movingMask = volumeAndMask(movingNode, movingSegmentation, movingSegment)
        except (ValueError, KeyError) as error:
            slicer.util.errorDisplay(str(error))
            return
        options = RegistrationOptions(affine=self.affineCheckBox.checked, edge_refinement=self.edgesCheckBox.checked)
        request = Register(fixed, fixedMask, moving, movingMask, options)
        self.job.start(request, lambda result: self._addTransform(movingNode, fixedNode, result), needsModel=False)

    def _addTransform(self, movingNode, fixedNode, result):
        from SAMSegmentMRML.research_outputs import addRegistrationTransform

        name = _("{moving} to {fixed}").format(moving=movingNode.GetName(), fixed=fixedNode.GetName())
        transformNode = addRegistrationTransform(
            movingNode.GetScene(), movingNode, result.transform, name, self.applyCheckBox.checked
        )
        self.job.statusLabel.text = _(
            "Added {transform}. Structure overlap (Dice): {before:.2f} before, {after:.2f} after."
        ).format(transform=transformNode.GetName(), before=result.dice_identity, after=result.dice_final)
