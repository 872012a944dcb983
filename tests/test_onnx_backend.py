import copy
import logging

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from synthetic import make_ct_phantom

from SAMSegmentLib.backends import export as export_module
from SAMSegmentLib.backends import (
    open_backend,
    runtime,
    selection,
)
from SAMSegmentLib.backends.onnx_model import OnnxPromptableModel
from SAMSegmentLib.errors import ModelUnavailableError
from SAMSegmentLib.models import wrap_network
from SAMSegmentLib.predictor import VolumePredictor
from SAMSegmentLib.prompts import Prompts
from SAMSegmentLib.volume import Axis

# Float32 kernels differ between torch and ONNX Runtime (fused operators, NCHWc convolutions):
# tiny networks agree to ~3e-6; LiteMedSAM's logits to ~3e-6 of their range (1.2e-4 of ~46) and
# its masks exactly on the synthetic CT and on the shared CT's liver and spleen. The tolerances
# leave room for other CPUs' kernels: a boundary pixel whose logit is ~0 may flip.
TINY_LOGIT_TOLERANCE = 1e-4
REAL_LOGIT_TOLERANCE = 1e-4  # relative to the largest |logit|
REAL_MASK_PIXELS_DIFFERING = 1e-4  # share of a 512 x 512 mask (26 pixels)


pytestmark = pytest.mark.slow  # exports ONNX graphs


@pytest.fixture(params=["tiny_sam_model", "tiny_hq_model"])
def tiny_model(request):
    return request.getfixturevalue(request.param)


def _decode_both(torch_model, onnx_model, image, points, labels, box, multimask, mask_logits=None):
    torch_embedding, onnx_embedding = torch_model.encode(image), onnx_model.encode(image)
    expected = torch_model.decode(torch_embedding, points, labels, box, mask_logits, multimask)
    actual = onnx_model.decode(onnx_embedding, points, labels, box, mask_logits, multimask)
    return expected, actual


@pytest.mark.parametrize(
    "points, box, multimask",
    [
        ([[30.0, 20.0]], None, True),  # a lone point: padded with a not-a-point token, three candidates
        ([[30.0, 20.0], [10.0, 12.0]], [5.0, 5.0, 40.0, 30.0], False),  # points and a box: five tokens
        (None, [5.0, 5.0, 40.0, 30.0], False),  # a box alone: two tokens
    ],
)
def test_onnx_decoder_matches_torch_for_any_number_of_prompt_tokens(tiny_model, graph_root, points, box, multimask):
    onnx_model = open_backend(tiny_model, "onnxruntime", graph_root)
    image = np.random.default_rng(1).random((48, 64)).astype(np.float32)
    point_array = None if points is None else np.array(points)
    labels = None if points is None else np.array([1, 0][: len(points)])
    box_array = None if box is None else np.array(box)
    expected, actual = _decode_both(tiny_model, onnx_model, image, point_array, labels, box_array, multimask)
    assert actual.low_res_logits.shape == expected.low_res_logits.shape
    torch.testing.assert_close(actual.low_res_logits, expected.low_res_logits, atol=TINY_LOGIT_TOLERANCE, rtol=0)
    torch.testing.assert_close(actual.scores, expected.scores, atol=1e-5, rtol=0)
    # The previous mask as a prompt goes through the dense input of the same graph.
    previous = expected.low_res_logits[0]
    expected_refined, actual_refined = _decode_both(
        tiny_model, onnx_model, image, point_array, labels, box_array, multimask, mask_logits=previous
    )
    torch.testing.assert_close(
        actual_refined.low_res_logits, expected_refined.low_res_logits, atol=TINY_LOGIT_TOLERANCE, rtol=0
    )
    assert not torch.equal(actual_refined.low_res_logits, actual.low_res_logits)


def test_volume_predictor_works_unchanged_with_the_onnx_model(tiny_model, graph_root, ct_phantom):
    onnx_model = open_backend(tiny_model, "onnxruntime", graph_root)
    masks = []
    for model in (tiny_model, onnx_model):
        predictor = VolumePredictor(model)
        predictor.set_volume(ct_phantom)
        prompts = Prompts(box=(15.0, 10.0, 45.0, 35.0))
        prompts.add_point(30.0, 22.0)
        masks.append(predictor.predict(Axis.AXIAL, 6, prompts).mask)
    assert masks[1].shape == (48, 64)
    np.testing.assert_array_equal(masks[1], masks[0])


def test_a_batch_is_encoded_like_its_images_one_by_one(tiny_sam_model, graph_root):
    onnx_model = open_backend(tiny_sam_model, "onnxruntime", graph_root)
    batch = torch.rand(2, 3, 128, 128)
    together = onnx_model.encode_tensor(batch)["image_embeddings"]
    apart = torch.cat([onnx_model.encode_tensor(batch[i : i + 1])["image_embeddings"] for i in range(2)])
    assert together.shape == (2, 256, 8, 8)
    torch.testing.assert_close(together, apart)


def test_real_litemedsam_matches_torch_on_a_synthetic_ct_slice(litemedsam, graph_root):
    volume = make_ct_phantom((3, 512, 512))
    predictors = []
    for model in (litemedsam, open_backend(litemedsam, "onnxruntime", graph_root)):
        predictor = VolumePredictor(model)
        predictor.set_volume(volume, volume_key="parity")
        predictors.append(predictor)
    torch_features = predictors[0].embed(Axis.AXIAL, 1).features["image_embeddings"]
    onnx_features = predictors[1].embed(Axis.AXIAL, 1).features["image_embeddings"]
    assert (onnx_features - torch_features).abs().max() <= 1e-4 * torch_features.abs().max()
    ys, xs = np.nonzero(volume.array[1] > 90)  # the organ: 150 HU in 30 HU tissue, noise 5 HU
    box = Prompts(box=(xs.min() - 5.0, ys.min() - 5.0, xs.max() + 5.0, ys.max() + 5.0))
    expected, actual = (predictor.predict(Axis.AXIAL, 1, box) for predictor in predictors)
    logit_range = expected.low_res_logits.abs().max()
    assert (actual.low_res_logits - expected.low_res_logits).abs().max() <= REAL_LOGIT_TOLERANCE * logit_range
    assert abs(actual.score - expected.score) <= 1e-3
    assert expected.mask.sum() > 10_000  # the organ was found, so the comparison means something
    assert np.mean(actual.mask != expected.mask) <= REAL_MASK_PIXELS_DIFFERING


def test_onnx_runtime_sees_litemedsams_window_around_a_small_box_as_torch_does(litemedsam, graph_root):
    """A 256 px window fills LiteMedSAM's input unresampled, so both backends smooth it alike."""
    volume = make_ct_phantom((3, 512, 512))
    box = Prompts(box=(240.0, 240.0, 270.0, 270.0))
    features = []
    for model in (litemedsam, open_backend(litemedsam, "onnxruntime", graph_root)):
        predictor = VolumePredictor(model)
        predictor.set_volume(volume, volume_key="parity")
        window = predictor.views(Axis.AXIAL, box)[0]
        assert window is not None and window.shape == (litemedsam.input_size, litemedsam.input_size)
        features.append(predictor.embed(Axis.AXIAL, 1, window).features["image_embeddings"])
    assert (features[1] - features[0]).abs().max() <= 1e-4 * features[0].abs().max()


def test_exported_graphs_are_reused_and_keyed_by_the_weights(tiny_sam_model, tmp_path, monkeypatch):
    first = OnnxPromptableModel(tiny_sam_model, tmp_path)
    graphs = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("model.onnx"))
    assert [p.parent.name for p in graphs] == ["decoder", "decoder_multimask", "encoder"]

    def no_export(*args, **kwargs):
        raise AssertionError("the cached graphs should have been used")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    again = OnnxPromptableModel(tiny_sam_model, tmp_path)
    assert again.graph_folder == first.graph_folder
    monkeypatch.undo()

    same_weights = wrap_network(tiny_sam_model.spec, copy.deepcopy(tiny_sam_model.network), torch.device("cpu"))
    assert export_module.model_folder(tmp_path, same_weights) == first.graph_folder
    with torch.no_grad():
        same_weights.network.mask_decoder.iou_token.weight.add_(1.0)
    assert export_module.model_folder(tmp_path, same_weights) != first.graph_folder


def test_a_crash_during_export_leaves_no_graph_behind(tiny_sam_model, tmp_path, monkeypatch):
    real_export = torch.onnx.export

    def crash_half_way(module, args, path, **kwargs):
        with open(path, "wb") as stream:
            stream.write(b"\x08\x07half a graph")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch.onnx, "export", crash_half_way)
    with pytest.raises(OSError, match="No space left"):
        OnnxPromptableModel(tiny_sam_model, tmp_path)
    assert not list(tmp_path.rglob("model.onnx"))
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []
    monkeypatch.setattr(torch.onnx, "export", real_export)
    assert OnnxPromptableModel(tiny_sam_model, tmp_path).encode(np.zeros((20, 20), np.float32)).nbytes > 0


@pytest.mark.slow  # exports the graphs twice
def test_a_damaged_cached_graph_is_exported_again(tiny_sam_model, tmp_path, caplog):
    first = OnnxPromptableModel(tiny_sam_model, tmp_path)
    encoder = export_module.graph_path(first.graph_folder, "encoder")
    encoder.write_bytes(encoder.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING):
        again = OnnxPromptableModel(tiny_sam_model, tmp_path)
    assert "cannot be loaded" in caplog.text
    image = np.random.default_rng(2).random((30, 40)).astype(np.float32)
    torch.testing.assert_close(
        again.encode(image).features["image_embeddings"], first.encode(image).features["image_embeddings"]
    )


def test_backend_choice(tiny_sam_model, graph_root, monkeypatch, caplog):
    assert open_backend(tiny_sam_model, "torch") is tiny_sam_model
    assert isinstance(open_backend(tiny_sam_model, "auto", graph_root), OnnxPromptableModel)
    with pytest.raises(ValueError, match="Unknown backend"):
        open_backend(tiny_sam_model, "tensorrt")
    monkeypatch.setattr(selection, "onnxruntime_available", lambda: False)
    assert open_backend(tiny_sam_model, "auto") is tiny_sam_model
    with pytest.raises(ModelUnavailableError, match="pip install onnxruntime"):
        open_backend(tiny_sam_model, "onnxruntime")


def test_auto_falls_back_to_torch_with_a_warning_when_export_fails(tiny_sam_model, tmp_path, monkeypatch, caplog):
    def unsupported(*args, **kwargs):
        raise RuntimeError("Exporting the operator 'aten::frobnicate' to ONNX is not supported")

    monkeypatch.setattr(torch.onnx, "export", unsupported)
    with caplog.at_level(logging.WARNING):
        assert open_backend(tiny_sam_model, "auto", tmp_path) is tiny_sam_model
    assert "frobnicate" in caplog.text and "using torch" in caplog.text
    with pytest.raises(RuntimeError, match="frobnicate"):
        open_backend(tiny_sam_model, "onnxruntime", tmp_path)


def test_auto_keeps_torch_when_onnx_runtime_lands_on_another_device(tiny_sam_model, graph_root, monkeypatch, caplog):
    # As on a GPU whose CUDA provider is installed but cannot start: ONNX Runtime falls back to the CPU.
    monkeypatch.setattr(OnnxPromptableModel, "execution_device", property(lambda self: torch.device("cuda")))
    with caplog.at_level(logging.WARNING):
        assert open_backend(tiny_sam_model, "auto", graph_root) is tiny_sam_model
    assert "using torch" in caplog.text
    assert isinstance(open_backend(tiny_sam_model, "onnxruntime", graph_root), OnnxPromptableModel)


def test_a_gpu_without_the_cuda_provider_is_reported_not_silently_dropped(monkeypatch, caplog):
    monkeypatch.setattr(runtime.ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with caplog.at_level(logging.WARNING):
        assert runtime.providers_for(torch.device("cuda")) == ["CPUExecutionProvider"]
    assert "onnxruntime-gpu" in caplog.text
    gpu_build = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(runtime.ort, "get_available_providers", lambda: gpu_build)
    providers = runtime.providers_for(torch.device("cuda", 1))
    assert providers[0] == ("CUDAExecutionProvider", {"device_id": "1", "arena_extend_strategy": "kSameAsRequested"})
    assert providers[1] == "CPUExecutionProvider"


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider' is not in available provider names")
def test_a_cuda_provider_that_fails_to_start_is_reported(tiny_sam_model, graph_root, monkeypatch, caplog):
    path = export_module.graph_path(OnnxPromptableModel(tiny_sam_model, graph_root).graph_folder, "encoder")
    # This onnxruntime has no CUDA provider; pretend it lists one, as a GPU build does without its CUDA libraries.
    monkeypatch.setattr(runtime, "cuda_provider_available", lambda: True)
    with caplog.at_level(logging.WARNING):
        session = runtime.create_session(path, torch.device("cuda"))
    assert "could not start CUDAExecutionProvider" in caplog.text
    assert runtime.session_device(session, torch.device("cuda")) == torch.device("cpu")


def test_session_options_follow_torch_threads_and_do_not_spin(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    options = runtime.session_options()
    assert options.intra_op_num_threads == 3
    assert options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
