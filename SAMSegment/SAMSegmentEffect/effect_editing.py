"""Segment writes through the SAM effect: the Segment Editor widget's own modification, masking and undo."""

from typing import ClassVar

import slicer

from SAMSegmentMRML.segment_writer import Modification


class EffectEditing:
    """SegmentEditing through this effect: the Segment Editor widget's own logic, masking and undo."""

    _MODES: ClassVar[dict] = {
        Modification.ADD: slicer.qSlicerSegmentEditorAbstractEffect.ModificationModeAdd,
        Modification.REMOVE: slicer.qSlicerSegmentEditorAbstractEffect.ModificationModeRemove,
    }

    def __init__(self, scriptedEffect):
        self.scriptedEffect = scriptedEffect

    def saveStateForUndo(self):
        self.scriptedEffect.saveStateForUndo()

    def editorNode(self):
        return self.scriptedEffect.parameterSetNode()

    def modifySegment(self, segmentationNode, segmentID, labelmap, modification, extent):
        # writeSegmentMasks selects the segment it writes first.
        self.scriptedEffect.modifySelectedSegmentByLabelmap(labelmap, self._MODES[modification], list(extent))
