"""SAMSegment: Segment Anything models (SAM, HQ-SAM, LiteMedSAM, SAM 2) in the Segment Editor.

Importing this module never imports torch or installs anything: the effect installs what is
missing on first use, after asking.
"""

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


def _addEngineToPath():
    """Find SAMSegmentLib: installed beside this file, or one folder up in a source checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    for folder in (here, os.path.dirname(here)):
        if os.path.isdir(os.path.join(folder, "SAMSegmentLib")):
            if folder not in sys.path:
                sys.path.append(folder)
            return


_addEngineToPath()


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
            "runs on a CPU), SAM and HQ-SAM (downloaded on request). This module manages the models."
        )
        self.parent.acknowledgementText = _(
            "Uses Segment Anything (Meta AI), HQ-SAM (ETH Zurich/HKUST), MedSAM and LiteMedSAM (Bo Wang lab), "
            "PyTorch and the Slicer PyTorch extension."
        )
        slicer.app.connect("startupCompleted()", registerEffect)


def registerEffect():
    """Add the SAM effect to the Segment Editor's effect list."""
    import qSlicerSegmentationsEditorEffectsPythonQt as effects

    effectPath = os.path.join(os.path.dirname(__file__), "SAMSegmentEffect", "SegmentEditorEffect.py")
    scriptedEffect = effects.qSlicerSegmentEditorScriptedEffect(None)
    scriptedEffect.setPythonSource(effectPath.replace("\\", "/"))
    scriptedEffect.self().register()


class SAMSegmentWidget(ScriptedLoadableModuleWidget):
    """Lists the models and where their weights are; segmenting happens in the Segment Editor."""

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        self.modelTable = qt.QTableWidget()
        self.modelTable.setColumnCount(3)
        self.modelTable.setHorizontalHeaderLabels([_("Model"), _("Weights"), _("Description")])
        self.modelTable.horizontalHeader().setStretchLastSection(True)
        self.modelTable.editTriggers = qt.QAbstractItemView.NoEditTriggers
        self.layout.addWidget(self.modelTable)
        openEditorButton = qt.QPushButton(_("Open the Segment Editor"))
        openEditorButton.clicked.connect(lambda: slicer.util.selectModule("SegmentEditor"))
        self.layout.addWidget(openEditorButton)
        self.layout.addStretch(1)

    def enter(self):
        from SAMSegmentLib.checkpoints import CheckpointStore
        from SAMSegmentLib.registry import MODELS

        store = CheckpointStore()
        self.modelTable.setRowCount(len(MODELS))
        for row, spec in enumerate(MODELS.values()):
            state = f"{store.state(spec)} ({spec.size_bytes / 1e6:.0f} MB)"
            for column, text in enumerate((spec.name, state, spec.description)):
                self.modelTable.setItem(row, column, qt.QTableWidgetItem(text))
        self.modelTable.resizeColumnsToContents()


class SAMSegmentLogic(ScriptedLoadableModuleLogic):
    """Owns the one inference worker of this Slicer session, shared by every SAM effect."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self._worker = None
        self.loadedModel = None  # (model name, device) the worker holds

    def worker(self):
        """The persistent inference worker, started on first use (this is where torch is imported)."""
        if self._worker is None or not self._worker.is_alive:
            from SAMSegmentLib.worker import InferenceWorker

            self._worker = InferenceWorker()
            self.loadedModel = None
            slicer.app.connect("aboutToQuit()", self.shutdown)
        return self._worker

    def shutdown(self):
        if self._worker is not None:
            self._worker.shutdown(timeout=5.0)
            self._worker = None


class SAMSegmentTest(ScriptedLoadableModuleTest):
    """Segments a synthetic volume through the same session the effect uses."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_promptApplyAndPropagate()

    def test_promptApplyAndPropagate(self):
        import importlib.util

        import numpy as np

        if importlib.util.find_spec("torch") is None:
            self.delayDisplay("PyTorch is not installed: skipping the segmentation test.")
            return
        from SAMSegmentLib.volume import Axis
        from SAMSegmentMRML.segment_writer import EditorLogicEditing
        from SAMSegmentMRML.session import EditorSession
        from SAMSegmentMRML.slice_views import SlicePosition

        # A bright ellipsoid in soft tissue, 12 slices.
        k, j, i = np.meshgrid(np.arange(12), np.arange(64), np.arange(64), indexing="ij")
        organ = ((k - 6) / 5.0) ** 2 + ((j - 32) / 14.0) ** 2 + ((i - 32) / 12.0) ** 2 < 1
        volumeNode = slicer.util.addVolumeFromArray(np.where(organ, 160, 20).astype(np.int16), name="SAMTest")
        segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        segmentationNode.CreateDefaultDisplayNodes()
        editorNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
        editorNode.SetAndObserveSegmentationNode(segmentationNode)
        editorLogic = slicer.vtkSlicerSegmentEditorLogic()
        editorLogic.SetMRMLScene(slicer.mrmlScene)
        editorLogic.SetMRMLApplicationLogic(slicer.app.applicationLogic())
        editorLogic.SetSegmentEditorNode(editorNode)
        editorLogic.SetSourceVolumeNode(volumeNode)
        editorLogic.TrivialSetSourceRepresentationToBinaryLabelmap()
        editorLogic.ResetModifierLabelmapToDefault()
        editorLogic.UpdateAlignedSourceVolume()
        segmentID = editorLogic.AddEmptySegment()
        editorNode.SetSelectedSegmentID(segmentID)

        logic = SAMSegmentLogic()
        session = EditorSession(
            logic.worker(),
            slicer.mrmlScene,
            segmentationNode,
            editorLogic.GetAlignedSourceVolume(),
            EditorLogicEditing(editorLogic),
        )
        session.loadModel("litemedsam", "auto")
        session.setVolume("auto")
        box = (SlicePosition(Axis.AXIAL, 6, (16.0, 14.0)), SlicePosition(Axis.AXIAL, 6, (48.0, 50.0)))
        session.setBox(*box)
        self._pump(session, lambda notices: session.canApply)
        session.apply(segmentID)
        written = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentID, volumeNode) > 0
        dice = 2 * (written[6] & organ[6]).sum() / (written[6].sum() + organ[6].sum())
        self.assertGreater(dice, 0.8)
        self.assertFalse(written[5].any())

        session.setBox(*box)
        session.propagate(segmentID, "both")
        self._pump(session, lambda notices: any(n.kind == "written" for n in notices), timeout=300)
        written = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentID, volumeNode) > 0
        self.assertGreater(2 * (written & organ).sum() / (written.sum() + organ.sum()), 0.7)
        editorLogic.Undo()
        afterUndo = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentID, volumeNode) > 0
        self.assertEqual(int(afterUndo[[0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11]].sum()), 0)
        session.close()
        logic.shutdown()
        self.delayDisplay("SAM test passed")

    def _pump(self, session, done, timeout=120.0):
        import time

        notices, deadline = [], time.monotonic() + timeout
        while not done(notices):
            notices.extend(session.processMessages())
            errors = [n.text for n in notices if n.kind in ("error", "out_of_memory")]
            self.assertEqual(errors, [])
            self.assertLess(time.monotonic(), deadline, "SAM did not answer in time")
            slicer.app.processEvents()
            time.sleep(0.05)
        return notices
