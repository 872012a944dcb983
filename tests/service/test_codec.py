"""The engine protocol's frames: every request and answer survives the trip, nothing else is accepted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from SAMSegmentLib.prediction import Prediction
from SAMSegmentLib.prompts import Prompts
from SAMSegmentLib.propagation import ObjectPrompts, ObjectResult, PropagationRequest, PropagationResult, Stop
from SAMSegmentLib.propagation.sam2 import MemoryPolicy
from SAMSegmentLib.protocol import (
    PROTOCOL_VERSION,
    Cancel,
    ComputePriorMaps,
    LoadModel,
    MessageKind,
    ModelReady,
    Predict,
    Preview,
    Propagate,
    ProtocolError,
    ProtocolVersionError,
    SetVolume,
    WorkerMessage,
    decode,
    encode,
)
from SAMSegmentLib.protocol.codec import MAGIC, encode_bytes
from SAMSegmentLib.registry import get_spec
from SAMSegmentLib.research.registration import RegistrationResult
from SAMSegmentLib.research.types import EverythingObject, EverythingResult, ValidationSplit
from SAMSegmentLib.volume import Axis, Volume

ROOT = Path(__file__).resolve().parents[2]


def trip(value):
    return decode(bytearray(encode_bytes(value)))


def test_requests_keep_their_types_fields_and_arrays(ct_phantom):
    volume = Volume(ct_phantom.array, (0.7, 0.7, 2.5), (1.0, -2.0, 3.0), np.diag([1.0, -1.0, 1.0]), "CT")
    prompts = Prompts(points=[(3.5, 4.0)], labels=[1], box=(1.0, 2.0, 30.0, 40.0))
    batch = [
        (1, LoadModel("litemedsam", "cpu", Path("/tmp/w.pth"))),
        (2, SetVolume(volume, "auto", "key", (Axis.CORONAL, 3), MemoryPolicy.SELF_SORTING)),
        (3, Predict(Axis.AXIAL, 6, prompts, np.zeros((64, 64), np.float32), True, "segment_1")),
        (4, Propagate(PropagationRequest(Axis.AXIAL, 6, [ObjectPrompts("s", prompts)], slice_range=(2, 9)))),
        (5, Cancel(3)),
        (6, ComputePriorMaps(slices=[1, 2])),
    ]
    decoded = trip(batch)
    assert [type(request) for _, request in decoded] == [type(request) for _, request in batch]
    sent_volume = decoded[1][1].volume
    np.testing.assert_array_equal(sent_volume.array, ct_phantom.array)
    assert sent_volume.array.dtype == ct_phantom.array.dtype
    assert sent_volume.spacing == (0.7, 0.7, 2.5) and sent_volume.modality == "CT"
    np.testing.assert_array_equal(sent_volume.direction, np.diag([1.0, -1.0, 1.0]))
    assert decoded[1][1].focus == (Axis.CORONAL, 3) and decoded[1][1].memory_policy is MemoryPolicy.SELF_SORTING
    assert decoded[2][1].prompts == prompts and decoded[2][1].object_id == "segment_1"
    assert decoded[3][1].request.slice_range == (2, 9)
    assert decoded[4] == (5, Cancel(3))


def test_answers_keep_masks_specs_and_results():
    rng = np.random.default_rng(0)
    mask = rng.random((512, 512)) > 0.5
    volume_mask = np.zeros((30, 512, 512), bool)
    volume_mask[10:20, 100:300, 50:200] = True
    transform = sitk.AffineTransform(3)
    transform.SetMatrix([1, 0.1, 0, 0, 1, 0, 0, 0, 1])
    transform.SetTranslation([1, 2, 3])
    answers = [
        WorkerMessage(1, MessageKind.RESULT, ModelReady(get_spec("litemedsam"), "cpu")),
        WorkerMessage(
            2, MessageKind.RESULT, Preview(Axis.AXIAL, 4, Prediction(mask, 0.9, np.ones(3), np.ones((2, 2))))
        ),
        WorkerMessage(
            3,
            MessageKind.CANCELLED,
            PropagationResult({"s": ObjectResult("s", volume_mask, [10, 11], [Stop("forward", 11, "cut")])}, True),
        ),
        WorkerMessage(
            4, MessageKind.RESULT, EverythingResult(Axis.AXIAL, [EverythingObject({3: mask}, [0.8])], {3: 1})
        ),
        WorkerMessage(5, MessageKind.RESULT, RegistrationResult(transform, 0.1, 0.2, 0.3, 0.4, False)),
        WorkerMessage(6, MessageKind.RESULT, ValidationSplit(range(2, 8), frozenset({1}))),
        WorkerMessage(7, MessageKind.ERROR, text="No model"),
    ]
    decoded = trip(answers)
    assert decoded[0].value.spec == get_spec("litemedsam")
    np.testing.assert_array_equal(decoded[1].value.prediction.mask, mask)
    result = decoded[2].value
    np.testing.assert_array_equal(result.objects["s"].mask, volume_mask)
    assert result.cancelled and result.objects["s"].stops == [Stop("forward", 11, "cut")]
    np.testing.assert_array_equal(decoded[3].value.objects[0].masks[3], mask)
    assert decoded[4].value.transform.GetMatrix() == pytest.approx(transform.GetMatrix())
    assert decoded[4].value.transform.GetTranslation() == pytest.approx((1, 2, 3))
    assert decoded[5].value == ValidationSplit(range(2, 8), frozenset({1}))
    assert decoded[6].kind is MessageKind.ERROR and decoded[6].text == "No model"


def test_masks_travel_compressed():
    mask = np.zeros((512, 512), bool)
    mask[100:300, 120:260] = True
    size = sum(memoryview(piece).nbytes for piece in encode(mask))
    assert size < 2_000, size  # 256 KB as bytes, 32 KB bit-packed


def test_only_protocol_types_are_sent_or_accepted():
    class Foreign:
        pass

    with pytest.raises(ProtocolError, match="Foreign"):
        encode(Foreign())
    with pytest.raises(ProtocolError, match="cannot be sent"):
        encode(np.array(["text"]))
    frame = bytearray(encode_bytes(Cancel(1)))
    forged = frame.replace(b'"Cancel"', b'"Popen!"')  # same length: a type outside the allowlist
    with pytest.raises(ProtocolError, match="not part of the SAM engine protocol"):
        decode(forged)


def test_malformed_frames_are_refused_clearly():
    frame = bytearray(encode_bytes([np.arange(10)]))
    with pytest.raises(ProtocolError, match=r"truncated|length"):
        decode(frame[:-3])
    with pytest.raises(ProtocolError, match="not a SAMSegment"):
        decode(b"GET / HTTP/1.1\r\n\r\n")
    wrong_size = frame.replace(b'"shape":[10]', b'"shape":[11]')
    with pytest.raises(ProtocolError, match="wrong size"):
        decode(wrong_size)
    bomb = bytearray(encode_bytes(np.zeros(8, bool))).replace(b'"shape":[8]', b'"shape":[9]')
    with pytest.raises(ProtocolError, match="wrong size"):
        decode(bomb)


def test_another_protocol_version_is_named():
    frame = bytearray(encode_bytes(Cancel(1)))
    frame[len(MAGIC) : len(MAGIC) + 2] = (PROTOCOL_VERSION + 1).to_bytes(2, "big")
    with pytest.raises(ProtocolVersionError, match=f"version {PROTOCOL_VERSION + 1}.*version {PROTOCOL_VERSION}"):
        decode(frame)


def test_the_client_side_imports_no_torch():
    """What the Slicer process imports to talk to the engine (protocol, client, launcher)."""
    code = (
        "import sys; import SAMSegmentLib.protocol, SAMSegmentLib.protocol.engine_client, "
        "SAMSegmentLib.protocol.clients, SAMSegmentLib.service.launcher; "
        "print(sorted(m for m in ('torch', 'onnxruntime', 'timm', 'segment_anything') if m in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "[]"
