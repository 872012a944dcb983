"""The research tools' glue on real MRML: segment everything into segments (undo, all or nothing),
prior maps as volumes on their input's geometry, registration as a transform node, and fine-tuning
from a volume and its segments."""

from __future__ import annotations

import numpy as np
import pytest
import slicer
from mrml_fixtures import loadVolume, makeEditor, writeImage

from SAMSegmentLib.protocol import MessageKind
from SAMSegmentLib.volume import Axis
from SAMSegmentMRML.geometry import (
    arrayToMatrix,
    labelmapLike,
    matrixToArray,
    orientedImageFromVolumeNode,
    volumeFromVolumeNode,
)
from SAMSegmentMRML.research_inputs import labelledCase, volumeAndMask
from SAMSegmentMRML.research_outputs import addPriorMapVolumes, addRegistrationTransform
from SAMSegmentMRML.segment_writer import EditorLogicEditing
from SAMSegmentMRML.session import NoticeKind

pytestmark = pytest.mark.slicer
torch = pytest.importorskip("torch")

TIMEOUT = 120


@pytest.fixture(scope="module")
def worker():
    from tiny_models import tiny_sam

    from SAMSegmentLib.worker import InferenceWorker, LoadModel, WorkerSettings

    with InferenceWorker(WorkerSettings(prefetch_slices=0), loader=lambda request: tiny_sam()) as worker:
        assert worker.wait(worker.submit(LoadModel("sam_vit_b", device="cpu")), TIMEOUT)[-1].kind is MessageKind.RESULT
        yield worker


def _answer(worker, request):
    last = worker.wait(worker.submit(request), TIMEOUT)[-1]
    assert last.kind is MessageKind.RESULT, last.text
    return last.value


def _phantomNode(scene, path, shape=(12, 48, 64)):
    from synthetic import make_ct_phantom

    volume = make_ct_phantom(shape)
    volume.direction = np.diag([-1.0, -1.0, 1.0])  # as CT files usually are: LPS axes flipped in-plane
    return volume, loadVolume(scene, writeImage(path, volume))


def _addSegment(segmentationNode, volumeNode, name: str, mask: np.ndarray) -> str:
    segmentID = segmentationNode.GetSegmentation().AddEmptySegment("", name)
    labelmap = labelmapLike(orientedImageFromVolumeNode(volumeNode), mask)
    slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        labelmap, segmentationNode, segmentID, slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE
    )
    return segmentID


def _segmentArray(segmentationNode, segmentID, volumeNode) -> np.ndarray:
    return slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentID, volumeNode) > 0


# ----- segment everything -----


def _editorSession(scene, worker, tmp_path):
    from SAMSegmentMRML.session import EditorSession

    _, volumeNode = _phantomNode(scene, tmp_path / "phantom.nrrd")
    editor = makeEditor(scene, volumeNode)
    editor.node.SetSelectedSegmentID(editor.addSegment("mine"))
    session = EditorSession(
        worker, scene, editor.segmentation, editor.logic.GetAlignedSourceVolume(), EditorLogicEditing(editor.logic)
    )
    session.setVolume("auto")
    return editor, session


def _pump(session, done, timeout: float = TIMEOUT) -> list:
    import time

    notices, deadline = [], time.monotonic() + timeout
    while not done(notices):
        assert time.monotonic() < deadline, notices
        time.sleep(0.02)
        notices += session.processMessages()
    return notices


def test_everything_on_a_slice_adds_one_segment_per_structure_and_one_undo_removes_them(scene, worker, tmp_path):
    from SAMSegmentLib.research.automatic import GridOptions

    editor, session = _editorSession(scene, worker, tmp_path)
    options = GridOptions(points_per_side=3, min_predicted_iou=-1.0, min_stability=0.0, nms_iou=1.0, min_area_px=1)
    session.segmentEverything(Axis.AXIAL, 6, options)
    assert session.segmentingEverything
    notices = _pump(session, lambda got: any(n.kind in (NoticeKind.WRITTEN, NoticeKind.ERROR) for n in got))
    assert [n.kind for n in notices] == [NoticeKind.PROGRESS, NoticeKind.WRITTEN], notices
    segmentation = editor.segmentation.GetSegmentation()
    added = [segmentation.GetNthSegmentID(n) for n in range(1, segmentation.GetNumberOfSegments())]
    assert len(added) >= 2 and notices[-1].text.startswith(f"Added {len(added)} segments")
    masks = [_segmentArray(editor.segmentation, segmentID, editor.volume) for segmentID in added]
    assert all(mask[6].any() and not np.delete(mask, 6, axis=0).any() for mask in masks)
    colours = {segmentation.GetSegment(segmentID).GetColor() for segmentID in added}
    assert len(colours) == len(added)
    assert not session.segmentingEverything

    editor.logic.Undo()
    assert [segmentation.GetNthSegmentID(n) for n in range(segmentation.GetNumberOfSegments())] == [
        editor.node.GetSelectedSegmentID()
    ]
    session.close()


def test_everything_refuses_a_slice_outside_the_volume(scene, worker, tmp_path):
    _editor, session = _editorSession(scene, worker, tmp_path)
    with pytest.raises(ValueError, match="outside the volume"):
        session.segmentEverything(Axis.AXIAL, 12)
    session.close()


def _slabResult(shape: tuple[int, int, int]):
    from SAMSegmentLib.research.everything import EverythingObject, EverythingResult

    big, small = np.zeros(shape[1:], bool), np.zeros(shape[1:], bool)
    big[5:30, 10:50] = True
    small[12:18, 20:30] = True  # inside the big one
    objects = [
        EverythingObject({3: big, 4: big}, [0.9, 0.8]),
        EverythingObject({4: small}, [0.7]),
    ]
    return EverythingResult(Axis.AXIAL, objects, {3: 1, 4: 2})


def test_a_slab_result_is_written_on_its_slices_and_overlapping_structures_both_stay(scene, tmp_path):
    from SAMSegmentMRML.everything_writer import addEverythingSegments

    volume, volumeNode = _phantomNode(scene, tmp_path / "phantom.nrrd")
    segmentationNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    geometry = orientedImageFromVolumeNode(volumeNode)
    result = _slabResult(volume.array.shape)
    added = addEverythingSegments(segmentationNode, geometry, result)
    names = [segmentationNode.GetSegmentation().GetSegment(segmentID).GetName() for segmentID in added]
    assert names == ["Structure 1 (IoU 0.85)", "Structure 2 (IoU 0.70)"]
    for segmentID, item in zip(added, result.objects):
        expected = np.zeros(volume.array.shape, bool)
        for index, mask in item.masks.items():
            expected[index] = mask
        np.testing.assert_array_equal(_segmentArray(segmentationNode, segmentID, volumeNode), expected)


def test_a_failure_while_adding_leaves_no_segment_behind(scene, tmp_path, monkeypatch):
    from SAMSegmentMRML.everything_writer import addEverythingSegments

    volume, volumeNode = _phantomNode(scene, tmp_path / "phantom.nrrd")
    segmentationNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    kept = segmentationNode.GetSegmentation().AddEmptySegment("", "kept")
    real = slicer.vtkSlicerSegmentationsModuleLogic
    calls = []

    class FailingSecondWrite:
        MODE_REPLACE = real.MODE_REPLACE

        @staticmethod
        def SetBinaryLabelmapToSegment(*args):
            calls.append(args)
            if len(calls) == 2:
                raise RuntimeError("disk full")
            return real.SetBinaryLabelmapToSegment(*args)

    monkeypatch.setattr(slicer, "vtkSlicerSegmentationsModuleLogic", FailingSecondWrite)
    with pytest.raises(RuntimeError, match="disk full"):
        geometry = orientedImageFromVolumeNode(volumeNode)
        addEverythingSegments(segmentationNode, geometry, _slabResult(volume.array.shape))
    assert list(segmentationNode.GetSegmentation().GetSegmentIDs()) == [kept]


# ----- prior maps -----


def test_prior_maps_become_volumes_on_the_input_geometry(scene, worker, tmp_path):
    from SAMSegmentLib.research.automatic import GridOptions
    from SAMSegmentLib.worker import ComputePriorMaps

    _, volumeNode = _phantomNode(scene, tmp_path / "phantom.nrrd")
    parent = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    volumeNode.SetAndObserveTransformNodeID(parent.GetID())
    volume = volumeFromVolumeNode(volumeNode)  # in world coordinates, as the prior maps panel sends it
    options = GridOptions(points_per_side=3, min_predicted_iou=-1.0, min_stability=0.0, stability_offset=0.05)
    ready = _answer(worker, ComputePriorMaps(Axis.AXIAL, [5, 6], options, volume=volume))
    priorNode, boundaryNode = addPriorMapVolumes(scene, volumeNode, ready.maps.prior, ready.maps.boundary)
    expected = matrixToArray(_ijkToRas(volumeNode))
    for node, array in ((priorNode, ready.maps.prior), (boundaryNode, ready.maps.boundary)):
        np.testing.assert_array_equal(matrixToArray(_ijkToRas(node)), expected)
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), array)
        assert node.GetTransformNodeID() == parent.GetID()
    assert priorNode.GetName() == f"{volumeNode.GetName()} SAM prior"
    assert slicer.util.arrayFromVolume(priorNode)[[5, 6]].any()


def _ijkToRas(node):
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return matrix


def test_a_prior_map_of_another_shape_is_refused(scene, tmp_path):
    _, volumeNode = _phantomNode(scene, tmp_path / "phantom.nrrd")
    before = scene.GetNumberOfNodes()
    with pytest.raises(ValueError, match="does not fit"):
        addPriorMapVolumes(scene, volumeNode, np.zeros((2, 3, 4)), np.zeros((2, 3, 4)))
    assert scene.GetNumberOfNodes() == before


# ----- registration -----


@pytest.fixture
def registrationScene(scene, tmp_path):
    """A fixed volume with the organ segmented, and a moving volume made from it by a known motion."""
    from SAMSegmentLib.research.synthetic_pair import synthetic_pair

    fixed, fixedNode = _phantomNode(scene, tmp_path / "fixed.nrrd", shape=(24, 48, 64))
    organ = fixed.array > 100
    pair = synthetic_pair(fixed, organ, (0.0, 0.0, 5.0), (4.0, -3.0, 2.5), lambda hu: 500.0 - hu, background=0.0)
    movingNode = loadVolume(scene, writeImage(tmp_path / "moving.nrrd", pair.moving))
    segmentationNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    fixedID = _addSegment(segmentationNode, fixedNode, "organ on CT", organ)
    return fixed, organ, pair, fixedNode, movingNode, segmentationNode, fixedID


def _register(worker, fixedNode, movingNode, segmentationNode, fixedID, movingID):
    from SAMSegmentLib.research.registration import RegistrationOptions
    from SAMSegmentLib.worker import Register

    fixed, fixedMask = volumeAndMask(fixedNode, segmentationNode, fixedID)
    moving, movingMask = volumeAndMask(movingNode, segmentationNode, movingID)
    options = RegistrationOptions(edge_refinement=False, iterations=60)
    return _answer(worker, Register(fixed, fixedMask, moving, movingMask, options))


def _worldOfVoxels(node, kji: np.ndarray) -> np.ndarray:
    """World RAS of (continuous) voxel positions ``[k, j, i]`` of a volume node, through its transforms."""
    import vtk

    ras = (matrixToArray(_ijkToRas(node)) @ np.c_[kji[:, ::-1], np.ones(len(kji))].T).T
    toWorld = vtk.vtkMatrix4x4()
    if node.GetParentTransformNode() is not None:
        node.GetParentTransformNode().GetMatrixTransformToWorld(toWorld)
    return (matrixToArray(toWorld) @ ras.T).T[:, :3]


@pytest.mark.parametrize("earlierShift", [None, (10.0, -5.0, 3.0)])
def test_the_transform_node_lays_the_moving_structure_onto_the_fixed_one(
    scene, worker, registrationScene, earlierShift
):
    fixed, organ, pair, fixedNode, movingNode, segmentationNode, fixedID = registrationScene
    if earlierShift is not None:  # e.g. an earlier attempt: the new node must replace it, not add to it
        shift = np.eye(4)
        shift[:3, 3] = earlierShift
        earlier = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
        earlier.SetMatrixTransformToParent(arrayToMatrix(shift))
        movingNode.SetAndObserveTransformNodeID(earlier.GetID())
    # Segmented where the moving volume is shown (in world coordinates, as the Segment Editor does).
    movingID = _addSegment(segmentationNode, movingNode, "organ on MR", pair.moving_mask)
    result = _register(worker, fixedNode, movingNode, segmentationNode, fixedID, movingID)
    transformNode = addRegistrationTransform(scene, movingNode, result.transform, "Moving to fixed")
    assert movingNode.GetTransformNodeID() == transformNode.GetID()
    # The fixed organ voxel at p shows, in the moving image, at truth(p): once registered, that
    # moving position must land on the fixed voxel in world coordinates.
    fixedVoxels = np.argwhere(organ)[::7]
    fixedPhysical = fixed.ijk_to_physical(fixedVoxels[:, ::-1])
    movingPhysical = np.array([pair.truth.TransformPoint(tuple(point)) for point in fixedPhysical])
    moving = pair.moving
    movingIjk = np.linalg.solve(moving.direction * np.asarray(moving.spacing), (movingPhysical - moving.origin).T).T
    fixedWorld = _worldOfVoxels(fixedNode, fixedVoxels)
    distances = np.linalg.norm(_worldOfVoxels(movingNode, movingIjk[:, ::-1]) - fixedWorld, axis=1)
    assert distances.mean() < 1.5, distances.mean()


def test_a_moving_volume_under_a_non_linear_transform_is_refused(scene, registrationScene):
    import SimpleITK as sitk

    _, _, _, _, movingNode, _, _ = registrationScene
    grid = scene.AddNewNodeByClass("vtkMRMLGridTransformNode")
    movingNode.SetAndObserveTransformNodeID(grid.GetID())
    before = scene.GetNumberOfNodes()
    with pytest.raises(ValueError, match="non-linear"):
        addRegistrationTransform(scene, movingNode, sitk.AffineTransform(3), "never made")
    assert scene.GetNumberOfNodes() == before and movingNode.GetTransformNodeID() == grid.GetID()


# ----- fine-tuning -----


def test_fine_tuning_from_a_volume_and_its_segments_makes_a_model_get_spec_finds(scene, tmp_path, monkeypatch):
    from tiny_models import tiny_sam

    from SAMSegmentLib.registry import get_spec
    from SAMSegmentLib.research.finetune import FinetuneOptions, ValidationSplit
    from SAMSegmentLib.worker import FineTune, InferenceWorker, WorkerSettings

    monkeypatch.setenv("SAMSEGMENT_CACHE_DIR", str(tmp_path / "models"))
    cases = []
    for number in range(2):
        volume, volumeNode = _phantomNode(scene, tmp_path / f"case{number}.nrrd")
        segmentationNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        _addSegment(segmentationNode, volumeNode, "organ", volume.array > 100)
        _addSegment(segmentationNode, volumeNode, "unused", np.zeros(volume.array.shape, bool))
        case, record = labelledCase(volumeNode, segmentationNode, ["organ", "unused"])
        np.testing.assert_array_equal(case.labels == 1, volume.array > 100)
        assert case.names == {1: "organ"} and record["volume"] == volumeNode.GetName()
        cases.append((case, record))
    request = FineTune(
        "sam_vit_b",
        "organ-from-slicer",
        [case for case, _ in cases],
        ["organ"],
        ValidationSplit(cases=frozenset({1})),
        FinetuneOptions(epochs=1),
        device="cpu",
        data=[record for _, record in cases],
    )
    settings = WorkerSettings(prefetch_slices=0, checkpoint_dir=tmp_path / "models")
    with InferenceWorker(settings, loader=lambda request: tiny_sam()) as worker:
        tuned = _answer(worker, request)
    assert tuned.name == "organ-from-slicer"
    assert get_spec("organ-from-slicer").extra["base"] == "sam_vit_b"


def test_fine_tuning_cases_need_named_non_empty_segments(scene, tmp_path):
    volume, volumeNode = _phantomNode(scene, tmp_path / "case.nrrd")
    segmentationNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    _addSegment(segmentationNode, volumeNode, "empty", np.zeros(volume.array.shape, bool))
    with pytest.raises(KeyError, match="no segment named 'liver'"):
        labelledCase(volumeNode, segmentationNode, ["liver"])
    with pytest.raises(ValueError, match="None of empty has any voxel"):
        labelledCase(volumeNode, segmentationNode, ["empty"])
    with pytest.raises(ValueError, match="at least one segment"):
        labelledCase(volumeNode, segmentationNode, [])


def test_segments_of_a_transformed_segmentation_are_read_where_the_transform_puts_them(scene, tmp_path):
    volume, volumeNode = _phantomNode(scene, tmp_path / "case.nrrd")
    segmentationNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    segmentID = _addSegment(segmentationNode, volumeNode, "organ", volume.array > 100)
    fixedVolume, mask = volumeAndMask(volumeNode, segmentationNode, segmentID)
    np.testing.assert_array_equal(mask, volume.array > 100)
    np.testing.assert_allclose(fixedVolume.origin, volume.origin)
    # Moved by two slices: the segment now covers the volume's voxels two slices further on.
    shift = np.eye(4)
    shift[:3, 3] = 2 * matrixToArray(_ijkToRas(volumeNode))[:3, 2]
    segmentationNode.SetAndObserveTransformNodeID(
        scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "shift").GetID()
    )
    segmentationNode.GetParentTransformNode().SetMatrixTransformToParent(arrayToMatrix(shift))
    expected = np.zeros_like(mask)
    expected[2:] = mask[:-2]
    np.testing.assert_array_equal(volumeAndMask(volumeNode, segmentationNode, segmentID)[1], expected)


def test_fine_tuned_models_are_offered_after_the_registry_models(tmp_path):
    from tiny_models import tiny_sam

    from SAMSegmentLib.checkpoints import CheckpointStore
    from SAMSegmentLib.registry import MODELS
    from SAMSegmentLib.research.finetune import save_finetuned
    from SAMSegmentMRML.model_choices import modelChoices, modelLabel

    store = CheckpointStore(tmp_path)
    assert [spec.name for spec in modelChoices(store)] == list(MODELS)
    save_finetuned(tiny_sam(), "my-organs", {"structures": ["organ"]}, store)
    choices = modelChoices(store)
    assert [spec.name for spec in choices] == [*MODELS, "my-organs"]
    assert modelLabel(choices[-1], store).startswith("my-organs (cached, ")
    labels = {spec.name: modelLabel(spec, store) for spec in choices}
    assert labels["mobile_sam"].endswith(", points and box)") and labels["litemedsam"].endswith(", box only)")
