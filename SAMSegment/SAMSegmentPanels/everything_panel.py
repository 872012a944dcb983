"""Segment everything on a slab of a volume; the structures go into a new segmentation node, so
removing that node undoes it. (The SAM effect segments everything on the current slice.)"""

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


class EverythingPanel:
    def __init__(self, parentLayout):
        layout = collapsedSection(parentLayout, _("Segment everything on a slab"))
        self.volumeSelector = volumeSelector(_("The volume to segment."))
        layout.addRow(_("Volume:"), self.volumeSelector)
        self.axisSelector = axisSelector()
        layout.addRow(_("Slices along:"), self.axisSelector)
        self.firstSpinBox, self.lastSpinBox, slab = sliceSpinBoxes()
        layout.addRow(_("Slab:"), slab)
        runButton, self.job = jobControls(layout, _("Segment everything"))
        runButton.toolTip = _(
            "Find every structure on the slab's slices; masks that overlap on neighbouring slices become one "
            "segment. The segments go into a new segmentation."
        )
        self.job.connect(runButton.clicked, self.onRun)

    def cleanup(self):
        self.job.cleanup()

    def onRun(self):
        if not enginePackagesReady():
            return
        from SAMSegmentLib.protocol import SegmentEverything
        from SAMSegmentMRML.geometry import volumeFromVolumeNode

        volumeNode = self.volumeSelector.currentNode()
        if volumeNode is None:
            slicer.util.errorDisplay(_("Choose a volume first."))
            return
        request = SegmentEverything(
            self.axisSelector.currentData,
            self.firstSpinBox.value,
            self.lastSpinBox.value,
            volume=volumeFromVolumeNode(volumeNode),
            intensity=chosenPreset(),
            volume_key=volumeKey(volumeNode),
        )
        self.job.start(request, lambda result: self._addSegments(volumeNode, result))

    def _addSegments(self, volumeNode, result):
        from SAMSegmentMRML.everything_writer import addEverythingSegments
        from SAMSegmentMRML.geometry import orientedImageFromVolumeNode

        if not result.objects:
            self.job.statusLabel.text = _("No structure was found on these slices.")
            return
        scene = volumeNode.GetScene()
        name = scene.GenerateUniqueName(_("{volume} everything").format(volume=volumeNode.GetName()))
        segmentationNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        segmentationNode.CreateDefaultDisplayNodes()
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
        try:
            added = addEverythingSegments(segmentationNode, orientedImageFromVolumeNode(volumeNode), result)
        except Exception:
            scene.RemoveNode(segmentationNode)  # nothing half-made stays in the scene
            raise
        self.job.statusLabel.text = _("Added {count} segments to {name}.").format(count=len(added), name=name)
