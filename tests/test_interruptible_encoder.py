"""An encoder call stops soon after its cancel token is set from another thread."""

import threading

import numpy as np
import pytest
import torch

from SAMSegmentLib.backends import open_backend
from SAMSegmentLib.cancel import CancelToken
from SAMSegmentLib.errors import CancelledError


def test_cancelling_calls_the_registered_stop_only_inside_the_block():
    token = CancelToken()
    stops = []
    with token.stopping_with(lambda: stops.append("inside")):
        assert stops == []
        token.cancel()
        assert stops == ["inside"]
    token.cancel()  # the block is over: nothing is called any more
    assert stops == ["inside"]
    with token.stopping_with(lambda: stops.append("already")):
        assert stops == ["inside", "already"]  # cancelled before the block: stopped at once


def _image():
    return np.random.default_rng(0).random((96, 128)).astype(np.float32)


def test_torch_encoder_stops_at_the_next_layer_when_cancelled_mid_call(tiny_sam_model):
    token = CancelToken()
    blocks = tiny_sam_model.network.image_encoder.blocks
    entered_after_cancel = []
    # The first block cancels, as the GUI thread would while the encoder runs.
    cancel_hook = blocks[0].register_forward_hook(lambda *_: token.cancel())
    record_hook = blocks[1].register_forward_hook(lambda *_: entered_after_cancel.append(True))
    try:
        with tiny_sam_model.interruptible(token), pytest.raises(CancelledError, match="interrupted"):
            tiny_sam_model.encode(_image())
    finally:
        cancel_hook.remove()
        record_hook.remove()
    assert entered_after_cancel == []
    # Outside the block the encoder is as before: no hook left behind, same result as a fresh call.
    assert all(not module._forward_pre_hooks for module in tiny_sam_model.network.image_encoder.modules())
    tiny_sam_model.encode(_image())


def test_onnx_encoder_cancelled_before_the_call_does_not_run(tiny_sam_model, tmp_path):
    onnx_model = open_backend(tiny_sam_model, "onnxruntime", tmp_path)
    token = CancelToken()
    token.cancel()
    with onnx_model.interruptible(token), pytest.raises(CancelledError):
        onnx_model.encode(_image())
    expected = tiny_sam_model.encode(_image()).features["image_embeddings"]
    actual = onnx_model.encode(_image()).features["image_embeddings"]  # the session still works
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=0)


def test_onnx_encoder_stops_mid_call_when_cancelled_from_another_thread(litemedsam, graph_root):
    onnx_model = open_backend(litemedsam, "onnxruntime", graph_root)
    image = np.random.default_rng(1).random((512, 512)).astype(np.float32)
    onnx_model.encode(image)  # warm-up: the first call allocates
    token = CancelToken()
    # LiteMedSAM's encoder takes ~0.8 s on two cores; the cancel lands well inside it.
    timer = threading.Timer(0.1, token.cancel)
    timer.start()
    try:
        with onnx_model.interruptible(token), pytest.raises(CancelledError):
            onnx_model.encode(image)
    finally:
        timer.cancel()
    assert onnx_model.encode(image).features["image_embeddings"].shape == (1, 256, 64, 64)
