"""SAM prior maps (SAMAug): a segmentation prior and a boundary prior as volumes over the input,
optionally also written to a folder with the stacked (image, prior, boundary) U-Net input."""

from pathlib import Path

import ctk
import qt
import slicer
from slicer.i18n import tr as _

from SAMSegmentMRML.geometry import volumeKey
from SAMSegmentPanels.worker_job import (
    axisSelector,
    chosenPreset,
    collapsedSection,
    enginePackagesReady,
    jobControls,
    sliceSpinBoxes,
    volumeSelector,
)


class PriorMapsPanel:
    def __init__(self, parentLayout):
        layout = collapsedSection(parentLayout, _("Prior maps for a segmentation network"))
        self.volumeSelector = volumeSelector(_("The volume to compute prior maps of."))
        layout.addRow(_("Volume:"), self.volumeSelector)
        self.axisSelector = axisSelector()
        layout.addRow(_("Slices along:"), self.axisSelector)
        self.limitCheckBox = qt.QCheckBox(_("only slices"))
        self.firstSpinBox, self.lastSpinBox, slices = sliceSpinBoxes()
        slices.insertWidget(0, self.limitCheckBox)
        layout.addRow(_("Slices:"), slices)
        self.folderEdit = ctk.ctkPathLineEdit()
        self.folderEdit.filters = ctk.ctkPathLineEdit.Dirs
        self.folderEdit.toolTip = _("Optional: also write sam_prior, sam_boundary and sam_stacked NRRD files here.")
        layout.addRow(_("Also save to:"), self.folderEdit)
        runButton, self.job = jobControls(layout, _("Compute prior maps"))
        self.job.connect(runButton.clicked, self.onRun)

    def cleanup(self):
        self.job.cleanup()

    def onRun(self):
        if not enginePackagesReady():
            return
        from SAMSegmentLib.protocol import ComputePriorMaps
        from SAMSegmentMRML.geometry import volumeFromVolumeNode

        volumeNode = self.volumeSelector.currentNode()
        if volumeNode is None:
            slicer.util.errorDisplay(_("Choose a volume first."))
            return
        slices = None
        if self.limitCheckBox.checked:
            slices = range(self.firstSpinBox.value, self.lastSpinBox.value + 1)
        volume = volumeFromVolumeNode(volumeNode)
        folder = self.folderEdit.currentPath
        request = ComputePriorMaps(
            self.axisSelector.currentData,
            slices,
            volume=volume,
            intensity=chosenPreset(),
            volume_key=volumeKey(volumeNode),
            output_folder=Path(folder) if folder else None,  # the engine writes the files, not the GUI thread
        )
        self.job.start(request, lambda ready: self._addVolumes(volumeNode, ready))

    def _addVolumes(self, volumeNode, ready):
        from SAMSegmentMRML.research_outputs import addPriorMapVolumes

        prior, boundary = addPriorMapVolumes(volumeNode.GetScene(), volumeNode, ready.maps.prior, ready.maps.boundary)
        text = _("Added {prior} and {boundary}.").format(prior=prior.GetName(), boundary=boundary.GetName())
        if ready.written:
            text += " " + _("Saved to {folder}.").format(folder=self.folderEdit.currentPath)
        self.job.statusLabel.text = text
