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
    import slicer

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import slicer_qt
    from sam_harness import MODULE_FILE, Editor, organVolume

    slicer_qt.install()


@pytest.fixture
def app(monkeypatch):
    """A fresh slicer.app with its host loop, scene, settings, dialogs and effect factory."""
    application = slicer_qt.newApplication(monkeypatch)
    yield application
    slicer_qt.quitApplication(application)


@pytest.fixture
def samModule(app):
    """The SAMSegment module loaded from source, after Slicer's startupCompleted()."""
    module = app.loadScriptedModule(str(MODULE_FILE))
    app.startupCompleted.emit()
    return module


@pytest.fixture
def editor(app):
    array, organ = organVolume()
    editor = Editor(app, array, sliceIndex=6)
    editor.organ = organ
    yield editor
    editor.widget.close()


@pytest.fixture
def tinyEngine(samModule, monkeypatch):
    """The real engine service, in its own process as in Slicer, serving the tiny random-weight SAM
    (tests/tiny_engine.py) for every model name: plumbing only, no accuracy.

    The one place that knows how the engine is started; the tests only talk to the effect and
    the logic. It is stopped when the test ends, as Slicer stops it when quitting."""
    pytest.importorskip("torch")
    pytest.importorskip("segment_anything")
    from SAMSegmentLib.service.launcher import EngineProcess

    tests = Path(__file__).resolve().parents[1]
    monkeypatch.setattr(
        samModule.pythonModule,
        "engineProcess",
        lambda: EngineProcess(python_path=[str(tests.parent)], entry=[str(tests / "tiny_engine.py")]),
    )
    yield
    slicer.util.getModuleLogic("SAMSegment").shutdown()
