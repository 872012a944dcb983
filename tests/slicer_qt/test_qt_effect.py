"""The SAM effect in the Segment Editor, driven as a user drives it: activation, Install, mouse
events from a slice view, the option buttons, undo."""

from __future__ import annotations

import sys

import fake_qt
import numpy as np
import pytest
import slicer
import vtk

pytestmark = pytest.mark.slicer


@pytest.fixture
def packages(monkeypatch):
    """Which of SAM's packages are 'installed': a list the test edits; installing empties it."""
    import SAMSegmentEffect.dependencies as dependencies

    missing: list[str] = []
    monkeypatch.setattr(dependencies, "missingRequirements", lambda: list(missing))
    monkeypatch.setattr(dependencies, "_satisfied", False)
    return missing


def test_activation_without_packages_asks_nothing_and_offers_install(samModule, editor, packages):
    packages.append("torch>=2.1")
    effect = editor.activate()
    assert slicer.app.dialogs.asked == []  # no question, no processEvents() inside activate()
    assert effect.options.installButton.visible
    assert effect.session is None
    editor.widget.setActiveEffectByName("")
    editor.activate()  # choosing the effect again does not ask either
    assert slicer.app.dialogs.asked == []


def test_install_button_installs_then_starts_only_if_still_active(samModule, editor, packages, monkeypatch):
    import SAMSegmentEffect.dependencies as dependencies

    packages.extend(["torch>=2.1", "timm>=0.9"])
    calls = []

    class PyTorchUtilsLogic:
        def installTorch(self, **kwargs):
            calls.append(kwargs)
            packages.remove("torch>=2.1")
            editor.widget.setActiveEffectByName("")  # the user switches effect while it installs
            return object()

    monkeypatch.setitem(sys.modules, "PyTorchUtils", type(sys)("PyTorchUtils"))
    sys.modules["PyTorchUtils"].PyTorchUtilsLogic = PyTorchUtilsLogic
    monkeypatch.setattr(dependencies, "_satisfiedRequirement", lambda requirement: requirement not in packages)
    monkeypatch.setattr(slicer.util, "pip_install", lambda requirements: packages.clear(), raising=False)
    if hasattr(slicer, "packaging"):
        monkeypatch.delattr(slicer, "packaging")
    effect = editor.activate()
    slicer.app.dialogs.answer(True)
    effect.options.installButton.click()
    assert calls[0]["torchVersionRequirement"] == ">=2.1"
    assert calls[0]["torchvisionVersionRequirement"] == ">=0.16"
    assert packages == []
    assert effect.session is None  # deactivated meanwhile: no session left running
    assert not effect.pollTimer.isActive()


def test_failed_torch_install_is_reported_not_raised(samModule, editor, packages, monkeypatch):
    packages.append("torch>=2.1")

    class PyTorchUtilsLogic:
        def installTorch(self, **kwargs):
            raise OSError("offline: could not reach download.pytorch.org")

    monkeypatch.setitem(sys.modules, "PyTorchUtils", type(sys)("PyTorchUtils"))
    sys.modules["PyTorchUtils"].PyTorchUtilsLogic = PyTorchUtilsLogic
    effect = editor.activate()
    slicer.app.dialogs.answer(True)
    effect.options.installButton.click()
    assert "offline" in slicer.app.dialogs.errors[0]
    assert effect.options.installButton.visible and effect.options.installButton.enabled


def test_declined_install_changes_nothing(samModule, editor, packages):
    packages.append("torch>=2.1")
    effect = editor.activate()
    slicer.app.dialogs.answer(False)
    effect.options.installButton.click()
    assert effect.session is None and slicer.app.dialogs.errors == []
    assert "cannot run" in effect.options.statusLabel.text


def test_versions_are_checked_not_only_imports(monkeypatch):
    import importlib.metadata

    sys.path.insert(0, str(__import__("sam_harness").MODULE_FILE.parent))
    import SAMSegmentEffect.dependencies as dependencies

    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "1.13.0" if name == "torch" else real(name))
    assert "torch>=2.1" in dependencies.missingRequirements()


def test_failed_start_restarts_on_volume_change(samModule, editor, packages, monkeypatch):
    logic = slicer.util.getModuleLogic("SAMSegment")
    failures = [OSError("[WinError 126] torch_cpu.dll could not be loaded")]

    def workerClient():
        if failures:
            raise failures.pop()
        return StubClient()

    monkeypatch.setattr(logic, "workerClient", workerClient)
    effect = editor.activate()
    assert effect.session is None and "could not start" in effect.options.statusLabel.text
    constant = slicer.util.addVolumeFromArray(np.zeros((4, 32, 32), np.int16), name="constant")
    editor.widget.setSourceVolumeNode(constant)
    assert effect.session is None and "constant" in effect.options.statusLabel.text  # said, not raised
    otherVolume = slicer.util.addVolumeFromArray(
        np.arange(4 * 32 * 32, dtype=np.int16).reshape(4, 32, 32), name="other"
    )
    editor.widget.setSourceVolumeNode(otherVolume)
    assert effect.session is not None
    editor.widget.setActiveEffectByName("")
    assert effect.session is None


class StubClient:
    """A worker client that never answers: for what happens before any answer."""

    def __init__(self):
        self.submitted, self.cancelled = [], []

    def submit(self, request):
        self.submitted.append(request)
        return len(self.submitted)

    def cancel(self, requestId=None):
        self.cancelled.append(requestId)
        return []

    def poll(self):
        return []


def choosePointModel(editor):
    """Choose a model that takes clicks (LiteMedSAM, the default, takes only a box) in the editor's
    parameters, where the effect keeps its choices, so it starts with it."""
    editor.node.SetAttribute("SAM.Model", "mobile_sam")


@pytest.fixture
def stubEffect(samModule, editor, packages, monkeypatch):
    client = StubClient()
    monkeypatch.setattr(slicer.util.getModuleLogic("SAMSegment"), "workerClient", lambda: client)
    choosePointModel(editor)
    effect = editor.activate()
    assert effect.session is not None
    effect.client = client
    return effect


def test_left_click_adds_a_positive_point_and_is_aborted(stubEffect, editor):
    aborted = editor.widget.click(editor.red, editor.xyOf(32, 30))
    assert aborted == [True, True]
    (point,) = stubEffect.session.prompts.points
    assert point.positive and stubEffect.session.prompts.index == 6
    assert np.allclose(point.xy, (32, 30), atol=0.6)


def test_a_click_with_a_box_only_model_is_refused_with_a_message(samModule, editor, packages, monkeypatch):
    client = StubClient()
    monkeypatch.setattr(slicer.util.getModuleLogic("SAMSegment"), "workerClient", lambda: client)
    effect = editor.activate()  # the default model, LiteMedSAM
    assert effect.scriptedEffect.parameter("Model") == "litemedsam"
    aborted = editor.widget.click(editor.red, editor.xyOf(32, 30))
    assert aborted == [True, True]  # the click is the effect's, not the view's
    assert effect.session.prompts.empty
    assert "takes only a box" in effect.options.statusLabel.text
    assert not any(type(request).__name__ == "Predict" for request in client.submitted)
    editor.widget.drag(editor.red, editor.xyOf(16, 14), editor.xyOf(48, 50))
    assert effect.session.prompts.box is not None


def test_choosing_a_box_only_model_removes_the_clicks_with_a_message(stubEffect, editor):
    editor.widget.click(editor.red, editor.xyOf(32, 30))
    editor.widget.drag(editor.red, editor.xyOf(16, 14), editor.xyOf(48, 50))
    options = stubEffect.options
    options.modelSelector.currentIndex = options.modelSelector.findData("litemedsam")
    assert stubEffect.scriptedEffect.parameter("Model") == "litemedsam"
    assert stubEffect.session.prompts.points == [] and stubEffect.session.prompts.box is not None
    assert "takes only a box" in options.statusLabel.text
    markers = stubEffect.drawing.markers[editor.red]
    assert markers.positive.GetMapper().GetInput().GetNumberOfPoints() == 0  # the click is no longer drawn
    predicts = [request for request in stubEffect.client.submitted if type(request).__name__ == "Predict"]
    assert predicts[-1].prompts.points == [] and predicts[-1].prompts.box is not None


def test_right_click_adds_a_negative_point_and_leaves_no_zoom(stubEffect, editor):
    aborted = editor.widget.click(editor.red, editor.xyOf(20, 20), button="right")
    assert aborted == [True, True]
    assert not editor.widget.zooming.get(editor.red)
    (point,) = stubEffect.session.prompts.points
    assert not point.positive


def test_right_drag_adds_nothing_and_leaves_no_zoom(stubEffect, editor):
    editor.widget.interact(editor.red, vtk.vtkCommand.RightButtonPressEvent, (100, 100))
    editor.widget.interact(editor.red, vtk.vtkCommand.MouseMoveEvent, (100, 140))
    editor.widget.interact(editor.red, vtk.vtkCommand.RightButtonReleaseEvent, (100, 140))
    assert stubEffect.session.prompts.empty
    assert not editor.widget.zooming.get(editor.red)


def test_quick_second_click_is_a_click_not_a_maximize(stubEffect, editor):
    aborted = editor.widget.doubleClick(editor.red, editor.xyOf(30, 30))
    assert all(aborted)
    assert slicer.app.layoutManager().maximizedView is None
    assert len(stubEffect.session.prompts.points) == 2


def test_ctrl_click_is_negative_and_shift_click_removes(stubEffect, editor):
    editor.widget.click(editor.red, editor.xyOf(30, 30), ctrl=True)
    assert not stubEffect.session.prompts.points[0].positive
    editor.widget.click(editor.red, editor.xyOf(30, 30), shift=True)
    assert stubEffect.session.prompts.empty


def test_drag_draws_a_box(stubEffect, editor):
    editor.widget.drag(editor.red, editor.xyOf(16, 14), editor.xyOf(48, 50))
    box = stubEffect.session.prompts.box
    assert np.allclose(sorted(box[::2]), (16, 48), atol=0.6) and np.allclose(sorted(box[1::2]), (14, 50), atol=0.6)


def test_click_outside_the_volume_is_shown_not_raised(stubEffect, editor):
    editor.widget.click(editor.red, (2, 2))
    assert stubEffect.session.prompts.empty
    assert "outside" in stubEffect.options.statusLabel.text


def test_hidden_segment_asks_before_apply_propagate_and_everything(stubEffect, editor):
    editor.segmentationNode.GetDisplayNode().SetSegmentVisibility(editor.segmentID, False)
    editor.widget.click(editor.red, editor.xyOf(32, 30))
    submitted = len(stubEffect.client.submitted)
    for button in ("propagateButton", "everythingButton"):
        getattr(stubEffect.options, button).enabled = True  # the model is not loaded in this stub
        editor.widget.segmentVisibilityReplies.append("cancel")
        getattr(stubEffect.options, button).click()
    editor.widget.segmentVisibilityReplies.append("cancel")
    stubEffect.onApply()
    assert editor.widget.segmentVisibilityQuestions == 3
    assert len(stubEffect.client.submitted) == submitted  # cancelled: nothing was sent


def test_combo_boxes_keep_values_as_data(stubEffect, editor):
    options = stubEffect.options
    options.deviceSelector.select("cpu")
    assert editor.node.GetAttribute("SAM.Device") == "cpu"
    assert options.deviceSelector.currentText != "cpu"  # a translatable label
    options.directionSelector.select("forward")
    assert editor.node.GetAttribute("SAM.Direction") == "forward"
    assert fake_qt.QSettings().value("SAMSegment/Direction") == "forward"


def test_propagating_from_a_slice_the_segment_misses_fills_only_that_gap(stubEffect, editor):
    from SAMSegmentMRML.segment_writer import MaskWrite, writeSegmentMasks
    from SAMSegmentMRML.session import Purpose

    options, session = stubEffect.options, stubEffect.session

    def propagateFromTheShownSlice():
        editor.widget.click(editor.red, editor.xyOf(32, 30))  # on slice 6, which the segment misses
        stubEffect.onPropagate()  # the stub never loads a model, so the button stays disabled
        request = stubEffect.client.submitted[-1].request
        session.tracker.forget(Purpose.PROPAGATION)  # the stub never answers
        stubEffect.updateButtons()
        return request

    assert options.keepSegmentedCheckBox.checked  # the default
    assert propagateFromTheShownSlice().slice_range is None  # an empty segment: the whole volume
    assert options.statusLabel.text == "Propagating..."
    held = np.zeros(slicer.util.arrayFromVolume(editor.volumeNode).shape, bool)
    held[8:10, 28:34, 28:34] = True  # an earlier propagation stopped at slice 8
    writeSegmentMasks(session.editing, session.segmentationNode, session.geometry, [MaskWrite(editor.segmentID, held)])
    request = propagateFromTheShownSlice()
    assert (request.seed_index, request.slice_range) == (6, (0, 7))
    assert "0 to 7" in options.statusLabel.text
    options.keepSegmentedCheckBox.click()
    assert editor.node.GetAttribute("SAM.KeepSegmentedSlices") == "0"
    assert fake_qt.QSettings().value("SAMSegment/KeepSegmentedSlices") == "0"
    assert propagateFromTheShownSlice().slice_range is None  # replaces, as before


def test_cleanup_stops_and_disconnects_everything(stubEffect, editor):
    timer = stubEffect.pollTimer
    editor.widget.close()
    assert not timer.isActive()
    assert fake_qt.connectionsTo(stubEffect) == []


def test_gui_thread_steps_do_not_import_torch(samModule, editor, packages, monkeypatch):
    """Activating and the option callbacks run on Slicer's GUI thread: no torch import there."""
    for name in ("torch", "torchvision"):
        monkeypatch.setitem(sys.modules, name, None)
    for name in [n for n in sys.modules if n.startswith(("SAMSegmentLib.", "SAMSegmentMRML."))]:
        monkeypatch.delitem(sys.modules, name)  # imported again, as in a fresh Slicer session
    client = StubClient()
    monkeypatch.setattr(slicer.util.getModuleLogic("SAMSegment"), "workerClient", lambda: client)
    choosePointModel(editor)
    effect = editor.activate()
    assert effect.session is not None, effect.options.statusLabel.text
    effect.options.deviceSelector.select("cpu")
    editor.widget.click(editor.red, editor.xyOf(32, 30))
    assert type(client.submitted[-1]).__name__ == "Predict"


def test_the_model_sees_the_window_shown_and_follows_it(stubEffect, editor):
    from SAMSegmentLib.intensity import IntensityMapping

    def sentIntensity():
        return [r.intensity for r in stubEffect.client.submitted if type(r).__name__ == "SetVolume"]

    assert stubEffect.scriptedEffect.parameter("IntensityPreset") == "display"
    display = editor.volumeNode.GetDisplayNode()
    display.SetAutoWindowLevel(False)
    display.SetWindowLevel(400, 40)
    editor.widget.click(editor.red, editor.xyOf(32, 30))  # the window changed since the volume was sent
    assert sentIntensity()[-1] == IntensityMapping(-160.0, 240.0, "display")
    count = len(sentIntensity())
    editor.widget.click(editor.red, editor.xyOf(30, 30))
    assert len(sentIntensity()) == count  # unchanged window: nothing resent
    stubEffect.options.presetSelector.select("soft_tissue")
    assert sentIntensity()[-1] == "soft_tissue"
