"""Install Slicer's Qt side, reproduced (fake_qt, fake_slicer, segment_editor, host_loop), around
the slicer-core wheel, and make fresh applications: for the tests (conftest.py) and
benchmarks/effect_gui_steps.py."""

from __future__ import annotations

import sys

import fake_qt
import fake_slicer
import host_loop
import segment_editor
import slicer

# Modules that Slicer would load fresh in a new session: removed after each application.
_SESSION_MODULES = ("SAMSegment", "SAMSegmentEffect", "SAMSegmentPanels")


def install() -> None:
    """Fake ``qt`` and ``ctk``, ``slicer.i18n``, ``slicer.ScriptedLoadableModule``, the Segment
    Editor's Python and C++ effect classes; once, before any SAMSegment module is imported."""
    sys.modules["qt"] = fake_qt.makeModule()
    sys.modules["ctk"] = fake_slicer.makeCtk()
    sys.modules["slicer.i18n"] = slicer.i18n = fake_slicer.makeI18n()
    sys.modules["slicer.ScriptedLoadableModule"] = slicer.ScriptedLoadableModule = (
        fake_slicer.makeScriptedLoadableModule()
    )
    sys.modules["qSlicerSegmentationsEditorEffectsPythonQt"] = segment_editor.makeEffectsPythonQt()
    effects, abstract = segment_editor.makeSegmentEditorEffects()
    sys.modules["SegmentEditorEffects"] = effects
    sys.modules["SegmentEditorEffects.AbstractScriptedSegmentEditorEffect"] = abstract
    for name in (
        "qSlicerSegmentEditorAbstractEffect",
        "qSlicerSegmentEditorScriptedEffect",
        "qSlicerSegmentEditorEffectFactory",
        "qMRMLSegmentEditorWidget",
    ):
        setattr(slicer, name, getattr(segment_editor, name))
    for name in (
        "qMRMLWidget",
        "qMRMLNodeComboBox",
        "qMRMLSegmentSelectorWidget",
        "qSlicerScriptedLoadableModule",
        "qSlicerScriptedLoadableModuleWidget",
    ):
        setattr(slicer, name, getattr(fake_slicer, name))


def _forgetSessionModules() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in _SESSION_MODULES:
            del sys.modules[name]


def newApplication(monkeypatch) -> fake_slicer.Application:
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
    application.scene = scene
    return application


def quitApplication(application: fake_slicer.Application) -> None:
    application.quit()  # aboutToQuit(): what the module started must stop
    _forgetSessionModules()
    host_loop.reset()
    application.scene.Clear(True)
