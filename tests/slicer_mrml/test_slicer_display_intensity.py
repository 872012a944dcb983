"""What the model sees in Slicer: the source volume's display window/level by default, on real MRML
display nodes, sent to the engine as the volume's intensity mapping."""

from __future__ import annotations

import numpy as np
import pytest
from mrml_fixtures import loadVolume, makeEditor, writeImage

from SAMSegmentLib.intensity import IntensityMapping
from SAMSegmentLib.protocol import SetVolume
from SAMSegmentLib.volume import Volume
from SAMSegmentMRML.display_intensity import DISPLAY_PRESET, displayedIntensity, engineIntensity
from SAMSegmentMRML.segment_writer import EditorLogicEditing
from SAMSegmentMRML.session import EditorSession

pytestmark = pytest.mark.slicer


@pytest.fixture
def volumeNode(scene, tmp_path):
    array = np.linspace(-1000, 1000, 6 * 20 * 24).reshape(6, 20, 24).astype(np.int16)
    return loadVolume(scene, writeImage(tmp_path / "ct.nrrd", Volume(array, spacing=(0.8, 0.8, 2.0))))


def _show(scene, volumeNode, window: float, level: float, automatic: bool = False):
    display = scene.AddNewNodeByClass("vtkMRMLScalarVolumeDisplayNode")
    display.SetAutoWindowLevel(False)
    display.SetWindowLevel(window, level)
    display.SetAutoWindowLevel(automatic)
    volumeNode.SetAndObserveDisplayNodeID(display.GetID())
    return display


def test_the_displayed_window_is_the_mapping(scene, volumeNode):
    _show(scene, volumeNode, window=1500, level=-600)
    assert displayedIntensity(volumeNode) == IntensityMapping(-1350.0, 150.0, DISPLAY_PRESET)
    assert engineIntensity(DISPLAY_PRESET, volumeNode) == IntensityMapping(-1350.0, 150.0, DISPLAY_PRESET)


def test_with_automatic_window_level_the_values_shown_are_taken(scene, volumeNode):
    display = _show(scene, volumeNode, window=400, level=40, automatic=True)
    mapping = displayedIntensity(volumeNode)
    assert mapping.high - mapping.low == pytest.approx(display.GetWindow())
    assert (mapping.low + mapping.high) / 2 == pytest.approx(display.GetLevel())


def test_presets_pass_through_and_volumes_shown_without_a_window_fall_back_to_auto(scene, volumeNode):
    assert engineIntensity("soft_tissue", volumeNode) == "soft_tissue"
    assert displayedIntensity(volumeNode) is None  # no display node yet
    assert engineIntensity(DISPLAY_PRESET, volumeNode) == "auto"
    assert engineIntensity(DISPLAY_PRESET, None) == "auto"
    labels = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeDisplayNode")
    volumeNode.SetAndObserveDisplayNodeID(labels.GetID())
    assert displayedIntensity(volumeNode) is None
    _show(scene, volumeNode, window=0, level=40)
    assert displayedIntensity(volumeNode) is None  # a zero-width window maps nothing


class SubmitRecorder:
    def __init__(self) -> None:
        self.submitted = []

    def submit(self, request) -> int:
        self.submitted.append(request)
        return len(self.submitted)

    def cancel(self, requestId=None) -> int:
        return 0

    def poll(self):
        return []


def test_the_session_sends_the_displayed_window_with_the_volume(scene, volumeNode):
    _show(scene, volumeNode, window=400, level=40)
    editor = makeEditor(scene, volumeNode)
    worker = SubmitRecorder()
    session = EditorSession(
        worker, scene, editor.segmentation, editor.logic.GetAlignedSourceVolume(), EditorLogicEditing(editor.logic)
    )
    session.setVolume(engineIntensity(DISPLAY_PRESET, volumeNode))
    (request,) = [r for r in worker.submitted if isinstance(r, SetVolume)]
    assert request.intensity == IntensityMapping(-160.0, 240.0, DISPLAY_PRESET)
    session.close()
