"""Slicer's Qt side, reproduced around the slicer-core wheel, for the effect's and panels' Python.

Installed once per test session (before any SAMSegment module is imported): fake ``qt`` and
``ctk`` modules, ``slicer.app``, ``slicer.i18n``, ``slicer.ScriptedLoadableModule``,
``SegmentEditorEffects`` and ``qSlicerSegmentationsEditorEffectsPythonQt``. Each test gets a
fresh application, host loop, scene, settings and effect factory, and loads the SAMSegment
module from its source file as Slicer does at startup.

How a test drives the effect (see test_qt_effect_*.py):

    def test_something(samModule, editor):
        effect = editor.activate()            # setActiveEffectByName("SAM"), returns the Python effect
        editor.widget.click(editor.red, editor.xyOf(i=20, j=30))
        editor.host.runUntil(lambda: effect.session.canApply)   # GIL-holding loop, never sleep
        effect.options.applyButton.click()
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

if importlib.util.find_spec("slicer") is None:
    collect_ignore_glob = ["test_*.py"]
else:
    import numpy as np

    import slicer

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import fake_qt
    import fake_slicer
    import host_loop
    import segment_editor

    REPO = Path(__file__).resolve().parents[2]
    MODULE_FILE = REPO / "SAMSegment" / "SAMSegment.py"
    sys.modules["qt"] = fake_qt.makeModule()
    sys.modules["ctk"] = fake_slicer.makeCtk()
    sys.modules["slicer.i18n"] = slicer.i18n = fake_slicer.makeI18n()
    sys.modules["slicer.ScriptedLoadableModule"] = slicer.ScriptedLoadableModule = fake_slicer.makeScriptedLoadableModule()
    sys.modules["qSlicerSegmentationsEditorEffectsPythonQt"] = segment_editor.makeEffectsPythonQt()
    _effects, _abstract = segment_editor.makeSegmentEditorEffects()
    sys.modules["SegmentEditorEffects"] = _effects
    sys.modules["SegmentEditorEffects.AbstractScriptedSegmentEditorEffect"] = _abstract
    for _name in ("qSlicerSegmentEditorAbstractEffect", "qSlicerSegmentEditorScriptedEffect", "qSlicerSegmentEditorEffectFactory", "qMRMLSegmentEditorWidget"):
        setattr(slicer, _name, getattr(segment_editor, _name))
    for _name in ("qMRMLWidget", "qMRMLNodeComboBox", "qMRMLSegmentSelectorWidget", "qSlicerScriptedLoadableModule", "qSlicerScriptedLoadableModuleWidget"):
        setattr(slicer, _name, getattr(fake_slicer, _name))

# Modules that Slicer would load fresh in a new session: removed after each test.
_SESSION_MODULES = ("SAMSegment", "SAMSegmentEffect", "SAMSegmentPanels")


def _forgetSessionModules() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in _SESSION_MODULES:
            del sys.modules[name]


@pytest.fixture
def app(monkeypatch):
    """A fresh slicer.app with its host loop, scene, settings, dialogs and effect factory."""
    loop = host_loop.reset()
    fake_qt.resetSignals()
    fake_qt.QSettings.resetStore()
    segment_editor.qSlicerSegmentEditorEffectFactory.reset()
    _forgetSessionModules()
    application = fake_slicer.Application()
    scene = slicer.vtkMRMLScene()
    segmentationsLogic = slicer.vtkSlicerSegmentationsModuleLogic()
    segmentationsLogic.SetMRMLScene(scene)
    modules = type("Modules", (), {})()
    modules.segmentations = type("Module", (), {"logic": staticmethod(lambda: segmentationsLogic)})()
    monkeypatch.setattr(slicer, "app", application, raising=False)
    monkeypatch.setattr(slicer, "mrmlScene", scene, raising=False)
    monkeypatch.setattr(slicer, "modules", modules, raising=False)
    dialogs = fake_slicer.Dialogs()
    dialogs.install(monkeypatch)
    application.host = loop
    application.dialogs = dialogs
    yield application
    application.quit()  # aboutToQuit(): what the module started must stop
    _forgetSessionModules()
    host_loop.reset()
    scene.Clear(True)


@pytest.fixture
def samModule(app):
    """The SAMSegment module loaded from source, after Slicer's startupCompleted()."""
    module = app.loadScriptedModule(str(MODULE_FILE))
    app.startupCompleted.emit()
    return module


class Editor:
    """A Segment Editor on a synthetic volume, with a Red slice view showing one axial slice."""

    def __init__(self, app, volumeArray: np.ndarray, sliceIndex: int) -> None:
        self.app, self.host, self.scene = app, app.host, slicer.mrmlScene
        self.volumeNode = slicer.util.addVolumeFromArray(volumeArray, name="SAMTest")
        self.segmentationNode = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        self.segmentationNode.CreateDefaultDisplayNodes()
        self.segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(self.volumeNode)
        self.segmentID = self.segmentationNode.GetSegmentation().AddEmptySegment("organ", "organ")
        self.node = self.scene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
        self.widget = slicer.qMRMLSegmentEditorWidget()
        self.widget.setMRMLScene(self.scene)
        self.widget.setMRMLSegmentEditorNode(self.node)
        self.widget.setSegmentationNode(self.segmentationNode)
        self.widget.setSourceVolumeNode(self.volumeNode)
        self.node.SetSelectedSegmentID(self.segmentID)
        self.red = app.layoutManager().addSliceWidget("Red", self._axialSliceNode(sliceIndex))

    def _axialSliceNode(self, k: int):
        """An axial view centred on slice ``k`` of the volume, 256 x 256 pixels."""
        sliceNode = self.scene.AddNewNodeByClass("vtkMRMLSliceNode")
        sliceNode.SetLayoutName("Red")
        nk, nj, ni = slicer.util.arrayFromVolume(self.volumeNode).shape
        centre = self.rasOf(ni / 2 - 0.5, nj / 2 - 0.5, k)
        sliceNode.SetDimensions(256, 256, 1)
        fov = 1.25 * max(ni, nj)
        sliceNode.SetFieldOfView(fov, fov, 1.0)
        sliceToRas = sliceNode.GetSliceToRAS()
        sliceToRas.Identity()
        sliceToRas.SetElement(0, 0, -1.0)  # Slicer's axial view: x to the left (R -> L)
        for row in range(3):
            sliceToRas.SetElement(row, 3, centre[row])
        sliceNode.UpdateMatrices()
        return sliceNode

    def rasOf(self, i: float, j: float, k: float) -> list[float]:
        import vtk

        matrix = vtk.vtkMatrix4x4()
        self.volumeNode.GetIJKToRASMatrix(matrix)
        return list(matrix.MultiplyPoint((i, j, k, 1.0))[:3])

    def xyOf(self, i: float, j: float, k: float | None = None, view=None) -> tuple[int, int]:
        """Pixel position in ``view`` (Red) of voxel (i, j) of the slice shown."""
        import vtk

        view = view or self.red
        sliceNode = view.mrmlSliceNode()
        if k is None:
            k = self.shownSlice(view)
        xyToRas = vtk.vtkMatrix4x4()
        xyToRas.DeepCopy(sliceNode.GetXYToRAS())
        xyToRas.Invert()
        x, y, _z, _w = xyToRas.MultiplyPoint((*self.rasOf(i, j, k), 1.0))
        return round(x), round(y)

    def shownSlice(self, view=None) -> int:
        import vtk

        view = view or self.red
        rasToIjk = vtk.vtkMatrix4x4()
        self.volumeNode.GetRASToIJKMatrix(rasToIjk)
        centre = view.mrmlSliceNode().GetSliceToRAS()
        ras = [centre.GetElement(row, 3) for row in range(3)]
        return round(rasToIjk.MultiplyPoint((*ras, 1.0))[2])

    def activate(self):
        """Select the SAM effect in this editor, as a user does; the Python effect object."""
        self.widget.setActiveEffectByName("SAM")
        effect = self.widget.activeEffect()
        assert effect is not None, "the SAM effect is not in the Segment Editor"
        return effect.self()

    def segmentArray(self, segmentID: str | None = None) -> np.ndarray:
        return slicer.util.arrayFromSegmentBinaryLabelmap(self.segmentationNode, segmentID or self.segmentID, self.volumeNode)


def organVolume(shape=(12, 64, 64)) -> tuple[np.ndarray, np.ndarray]:
    """A bright ellipsoid in soft tissue (as the module self-test uses), and its mask."""
    nk, nj, ni = shape
    k, j, i = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    organ = ((k - nk / 2) / (nk / 2.4)) ** 2 + ((j - nj / 2) / (nj / 4.5)) ** 2 + ((i - ni / 2) / (ni / 5.3)) ** 2 < 1
    return np.where(organ, 160, 20).astype(np.int16), organ


@pytest.fixture
def editor(app):
    array, organ = organVolume()
    editor = Editor(app, array, sliceIndex=6)
    editor.organ = organ
    yield editor
    editor.widget.close()


@pytest.fixture
def tinyEngine(monkeypatch):
    """Inference through the module logic's worker client with the tiny random-weight SAM
    (tests/tiny_models.py) for every model name: plumbing only, no accuracy.

    The one place that knows how the engine is started; the tests only talk to the effect and
    the logic. (Today: the in-process InferenceWorker; an out-of-process engine replaces this.)"""
    pytest.importorskip("torch")
    pytest.importorskip("segment_anything")
    import functools

    import SAMSegmentLib.worker as workerPackage
    from tiny_models import tiny_sam

    model = tiny_sam()
    settings = workerPackage.WorkerSettings(prefetch_slices=0)
    monkeypatch.setattr(
        workerPackage, "InferenceWorker", functools.partial(workerPackage.InferenceWorker, settings, lambda request: model)
    )
    return model
