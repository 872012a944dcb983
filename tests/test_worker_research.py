"""The research requests on the inference worker: results, progress, cancel mid-run, clear errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from synthetic import make_ct_phantom
from test_worker_doubles import SlowEncoder, answer_to, organ_box, ready_worker

from SAMSegmentLib.datasets import LabelledCase
from SAMSegmentLib.predictor import VolumePredictor
from SAMSegmentLib.registry import get_spec
from SAMSegmentLib.research.automatic import GridOptions
from SAMSegmentLib.research.everything import segment_everything
from SAMSegmentLib.research.finetune import FinetuneOptions, ValidationSplit, find_finetuned
from SAMSegmentLib.research.registration import RegistrationOptions, transform_error
from SAMSegmentLib.research.synthetic_pair import synthetic_pair
from SAMSegmentLib.volume import Axis
from SAMSegmentLib.worker import (
    ComputePriorMaps,
    FineTune,
    FineTuned,
    InferenceWorker,
    LoadModel,
    MessageKind,
    Predict,
    PriorMapsReady,
    Register,
    SegmentEverything,
    WorkerSettings,
)

TIMEOUT = 120
KEEP_ALL = GridOptions(points_per_side=3, min_predicted_iou=-1.0, min_stability=0.0, nms_iou=1.0, min_area_px=1)
FAST_REGISTRATION = RegistrationOptions(edge_refinement=False, iterations=60)


def _messages(worker: InferenceWorker, request: object, timeout: float = TIMEOUT) -> list:
    return worker.wait(worker.submit(request), timeout=timeout)


def _cancel_after_first_progress(worker: InferenceWorker, request: object) -> list:
    """Submit ``request``, cancel it as soon as it reports progress, and return its messages."""
    request_id = worker.submit(request)
    messages: list = []
    while not any(m.kind is MessageKind.PROGRESS for m in messages):
        messages += [m for m in worker.poll() if m.request_id == request_id]
        assert not (messages and messages[-1].kind.final), messages[-1]
    worker.cancel(request_id)
    return messages + [m for m in worker.wait(request_id, timeout=TIMEOUT) if m.request_id == request_id]


def test_everything_on_the_current_slice_reuses_its_embedding_and_reports_progress(tiny_sam_model, ct_phantom):
    with ready_worker(tiny_sam_model, ct_phantom, prefetch_slices=0) as worker:
        assert answer_to(worker, Predict(Axis.AXIAL, 6, organ_box(ct_phantom))).kind is MessageKind.RESULT
        embedded = worker.predictor.embed_count
        messages = _messages(worker, SegmentEverything(Axis.AXIAL, 6, options=KEEP_ALL))
        assert worker.predictor.embed_count == embedded  # the previewed slice's features were reused
        assert [m.value for m in messages if m.kind is MessageKind.PROGRESS] == [(1, 1)]
        result = messages[-1].value
        assert messages[-1].kind is MessageKind.RESULT and result.masks_per_slice == {6: len(result.objects)}
        reference = VolumePredictor(tiny_sam_model)
        reference.set_volume(ct_phantom)
        expected = segment_everything(reference, Axis.AXIAL, 6, options=KEEP_ALL)
        assert len(expected.objects) == len(result.objects) > 0
        for found, wanted in zip(result.objects, expected.objects):
            np.testing.assert_array_equal(found.masks[6], wanted.masks[6])


def test_everything_on_a_volume_of_its_own_leaves_the_current_volume_alone(tiny_sam_model, ct_phantom):
    other = make_ct_phantom(shape=(5, 40, 40), seed=3)
    with ready_worker(tiny_sam_model, ct_phantom, prefetch_slices=0) as worker:
        messages = _messages(worker, SegmentEverything(Axis.AXIAL, 1, 3, KEEP_ALL, volume=other, volume_key="other"))
        assert [m.value for m in messages if m.kind is MessageKind.PROGRESS] == [(1, 3), (2, 3), (3, 3)]
        result = messages[-1].value
        assert sorted(result.masks_per_slice) == [1, 2, 3]
        assert all(mask.shape == (40, 40) for item in result.objects for mask in item.masks.values())
        assert worker.predictor.volume is ct_phantom


def test_prior_maps_cover_the_asked_slices_on_the_volume_grid(tiny_sam_model, ct_phantom, tmp_path):
    with ready_worker(tiny_sam_model, ct_phantom, prefetch_slices=0) as worker:
        options = dataclasses.replace(KEEP_ALL, stability_offset=0.05)
        request = ComputePriorMaps(Axis.AXIAL, [3, 4], options, output_folder=tmp_path / "priors")
        messages = _messages(worker, request)
        assert [m.value for m in messages if m.kind is MessageKind.PROGRESS] == [(1, 2), (2, 2)]
        ready = messages[-1].value
        assert isinstance(ready, PriorMapsReady) and ready.maps.slices == [3, 4]
        assert ready.maps.prior.shape == ct_phantom.array.shape
        assert ready.maps.prior[[3, 4]].any() and not ready.maps.prior[[0, 1, 2, 5]].any()
        # The engine wrote the files (never the GUI thread); the stacked input holds the mapped image.
        assert set(ready.written) == {"prior", "boundary", "stacked"}
        stacked = sitk.GetArrayFromImage(sitk.ReadImage(str(ready.written["stacked"])))
        assert stacked.shape == (*ct_phantom.array.shape, 3)
        assert 0.0 <= stacked[..., 0].min() and stacked[..., 0].max() <= 1.0


def test_prior_maps_refuse_slices_outside_the_volume(tiny_sam_model, ct_phantom):
    with ready_worker(tiny_sam_model, ct_phantom, prefetch_slices=0) as worker:
        answer = answer_to(worker, ComputePriorMaps(Axis.AXIAL, [2, 40]))
        assert answer.kind is MessageKind.ERROR and "outside the volume" in answer.text


def test_research_needs_a_model_and_a_volume(tiny_sam_model, ct_phantom):
    with InferenceWorker(WorkerSettings(prefetch_slices=0), loader=lambda request: tiny_sam_model) as worker:
        answer = answer_to(worker, SegmentEverything(Axis.AXIAL, 2))
        assert answer.kind is MessageKind.ERROR and "No model is loaded" in answer.text
        answer_to(worker, LoadModel("sam_vit_b", device="cpu"))
        answer = answer_to(worker, ComputePriorMaps())
        assert answer.kind is MessageKind.ERROR and "No volume is loaded" in answer.text
        answer = answer_to(worker, SegmentEverything(Axis.AXIAL, 2, volume=ct_phantom, options=KEEP_ALL))
        assert answer.kind is MessageKind.RESULT  # a volume of its own needs no SetVolume


def test_cancel_stops_segment_everything_between_slices(tiny_sam_model, ct_phantom):
    slow = SlowEncoder(tiny_sam_model, seconds=0.3)
    with ready_worker(slow, ct_phantom, prefetch_slices=0) as worker:
        messages = _cancel_after_first_progress(worker, SegmentEverything(Axis.AXIAL, 0, 11, KEEP_ALL))
        assert messages[-1].kind is MessageKind.CANCELLED and "cancelled" in messages[-1].text
        assert len(slow.starts) < 12
        # The worker goes on serving.
        assert answer_to(worker, SegmentEverything(Axis.AXIAL, 5, options=KEEP_ALL)).kind is MessageKind.RESULT


def _labelled_phantom(seed: int) -> LabelledCase:
    volume = make_ct_phantom(seed=seed)
    return LabelledCase(volume, (volume.array > 100).astype(np.uint8) * 2, {2: "organ"})


@pytest.fixture
def models_folder(tmp_path, monkeypatch):
    """An empty models folder that ``get_spec`` also searches, as the default folder."""
    monkeypatch.setenv("SAMSEGMENT_CACHE_DIR", str(tmp_path))
    return tmp_path


def _fine_tune(name: str, **changes: object) -> FineTune:
    request = FineTune(
        "sam_vit_b",
        name,
        [_labelled_phantom(0), _labelled_phantom(1)],
        ["organ"],
        ValidationSplit(cases=frozenset({1})),
        FinetuneOptions(epochs=2),
        device="cpu",
        data=[{"image": "phantom 0"}, {"image": "phantom 1"}],
    )
    return dataclasses.replace(request, **changes)


def test_fine_tuning_saves_a_model_by_name_and_leaves_the_loaded_one_alone(models_folder):
    from tiny_models import tiny_sam

    loaded = tiny_sam()
    before = {key: value.clone() for key, value in loaded.network.state_dict().items()}
    copies = iter([loaded])  # the first load is the session's model, every later one a fresh copy
    settings = WorkerSettings(prefetch_slices=0, checkpoint_dir=models_folder)
    with InferenceWorker(settings, loader=lambda request: next(copies, None) or tiny_sam()) as worker:
        answer_to(worker, LoadModel("sam_vit_b", device="cpu"))
        messages = _messages(worker, _fine_tune("organ-tuned"))
        assert messages[-1].kind is MessageKind.RESULT, messages[-1].text
        tuned = messages[-1].value
        assert isinstance(tuned, FineTuned) and tuned.name == "organ-tuned"
        assert set(tuned.report.before.per_structure) == {"organ"}
        stages = {m.text for m in messages if m.kind is MessageKind.PROGRESS}
        assert stages == {"Embedding image 0", "Embedding image 1", "Training the mask decoder"}
        assert get_spec("organ-tuned").extra["base"] == "sam_vit_b"
        assert find_finetuned("organ-tuned").sha256
        for key, value in loaded.network.state_dict().items():
            assert torch.equal(value, before[key]), key

        again = answer_to(worker, _fine_tune("organ-tuned"))
        assert again.kind is MessageKind.ERROR and "exists" in again.text


def test_fine_tuning_refuses_bad_input_before_loading_anything(models_folder):
    loads: list = []
    settings = WorkerSettings(prefetch_slices=0, checkpoint_dir=models_folder)
    with InferenceWorker(settings, loader=loads.append) as worker:
        answer = answer_to(worker, _fine_tune("litemedsam"))
        assert answer.kind is MessageKind.ERROR and "built-in model" in answer.text
        answer = answer_to(worker, _fine_tune("tuned", cases=[]))
        assert answer.kind is MessageKind.ERROR and "labelled image" in answer.text
    assert loads == []


def test_cancel_stops_fine_tuning_and_saves_nothing(models_folder):
    from tiny_models import tiny_sam

    settings = WorkerSettings(prefetch_slices=0, checkpoint_dir=models_folder)
    with InferenceWorker(settings, loader=lambda request: SlowEncoder(tiny_sam(), seconds=0.2)) as worker:
        messages = _cancel_after_first_progress(worker, _fine_tune("never-saved"))
        assert messages[-1].kind is MessageKind.CANCELLED
    assert find_finetuned("never-saved") is None


@pytest.fixture(scope="module")
def registration_pair():
    fixed = make_ct_phantom(shape=(24, 48, 64))
    mask = fixed.array > 100
    moved = synthetic_pair(fixed, mask, (0.0, 0.0, 5.0), (4.0, -3.0, 2.5), lambda hu: 500.0 - hu, background=0.0)
    return fixed, mask, moved


def test_registration_recovers_the_motion_and_reports_its_stages(registration_pair):
    fixed, mask, moved = registration_pair
    with InferenceWorker(WorkerSettings(prefetch_slices=0)) as worker:
        messages = _messages(worker, Register(fixed, mask, moved.moving, moved.moving_mask, FAST_REGISTRATION))
    assert messages[-1].kind is MessageKind.RESULT, messages[-1].text
    result = messages[-1].value
    points = fixed.ijk_to_physical(np.argwhere(mask)[:, ::-1])
    error = transform_error(result.transform, moved.truth, points)
    assert error.mean_mm < 1.5 and result.dice_masks > result.dice_identity
    progress = [m for m in messages if m.kind is MessageKind.PROGRESS]
    assert progress and {m.text for m in progress} == {"rigid masks"}
    assert all(m.value[1] == 0 for m in progress)  # iterations: no known total


def test_registration_refuses_an_empty_mask(registration_pair):
    fixed, mask, moved = registration_pair
    with InferenceWorker(WorkerSettings(prefetch_slices=0)) as worker:
        answer = answer_to(worker, Register(fixed, mask, moved.moving, np.zeros_like(mask), FAST_REGISTRATION))
    assert answer.kind is MessageKind.ERROR and "moving mask is empty" in answer.text


def test_cancel_stops_registration_mid_run(registration_pair):
    fixed, mask, moved = registration_pair
    with InferenceWorker(WorkerSettings(prefetch_slices=0)) as worker:
        options = RegistrationOptions(iterations=5000)
        messages = _cancel_after_first_progress(worker, Register(fixed, mask, moved.moving, moved.moving_mask, options))
    assert messages[-1].kind is MessageKind.CANCELLED and "no transform" in messages[-1].text


def test_onnx_graphs_go_to_the_configured_models_folder(tmp_path, monkeypatch, tiny_sam_model):
    import SAMSegmentLib.worker.session as session_module

    opened = {}

    def open_backend(model, backend, graph_root=None):
        opened.update(backend=backend, graph_root=graph_root)
        return model

    monkeypatch.setattr(session_module, "open_backend", open_backend)
    monkeypatch.setattr(session_module, "load_model", lambda *args: tiny_sam_model)
    with InferenceWorker(WorkerSettings(prefetch_slices=0, checkpoint_dir=tmp_path)) as worker:
        assert answer_to(worker, LoadModel("sam_vit_b", device="cpu")).kind is MessageKind.RESULT
    assert opened == {"backend": "auto", "graph_root": tmp_path / "onnx"}


def test_segment_everything_refuses_a_slab_outside_the_volume(tiny_sam_model, ct_phantom):
    with ready_worker(tiny_sam_model, ct_phantom, prefetch_slices=0) as worker:
        answer = answer_to(worker, SegmentEverything(Axis.AXIAL, 10, 14))
        assert answer.kind is MessageKind.ERROR and "outside the volume" in answer.text
