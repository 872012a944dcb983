"""The engine protocol's frames: a JSON header describing the value, then its arrays as raw bytes.

A frame is ``MAGIC``, the protocol version (uint16), the header's length (uint32), the UTF-8
JSON header and the array bytes, one after another. Only the types in ``WIRE_TYPES`` (and
plain JSON values, tuples, dicts, sets, ranges, paths, numeric numpy arrays) can be sent, so
decoding never runs code chosen by the sender (no pickle).

Arrays travel without a copy into the frame. Boolean masks are bit-packed and zlib-compressed
(a 512 x 512 mask: 256 KB as bytes, 32 KB packed, usually 1-3 KB compressed); every other array
goes as it is (a volume is sent once per session, and compressing 150 MB would cost seconds).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SAMSegmentError

PROTOCOL_VERSION = 1
MAGIC = b"SAMS"
# Over HTTP: every request names its protocol version in this header; frames travel as this type.
PROTOCOL_HEADER = "X-SAMSegment-Protocol"
FRAME_TYPE = "application/x-samsegment-frame"
_PREFIX = struct.Struct(">4sHI")  # magic, protocol version, header length
# numpy kinds a frame may carry: bool, signed and unsigned integers, floats.
_ARRAY_KINDS = frozenset("biuf")
_MASK_COMPRESSION_LEVEL = 1  # fastest zlib level: masks are mostly runs, level 1 already gets ~10x


class ProtocolError(SAMSegmentError):
    """A frame or message that does not follow the engine protocol."""


class ProtocolVersionError(ProtocolError):
    """The two sides speak different protocol versions."""

    def __init__(self, ours: int, theirs: int) -> None:
        self.ours, self.theirs = ours, theirs
        super().__init__(
            f"The SAM engine speaks protocol version {theirs}, this SAMSegment speaks version {ours}: "
            "install the same SAMSegment version on both sides."
        )


def _wire_types() -> dict[str, type]:
    """Every dataclass and enum a frame may name, by class name (unique across the protocol)."""
    from ..datasets import LabelledCase
    from ..intensity import IntensityMapping
    from ..prediction import Prediction
    from ..prompts import Prompts
    from ..propagation.sam2 import MemoryPolicy, SAM2StopRule
    from ..propagation.stop_rule import StopRule
    from ..propagation.types import (
        Direction,
        ObjectPrompts,
        ObjectResult,
        PropagationRequest,
        PropagationResult,
        SliceResult,
        Stop,
    )
    from ..registry import Family, ModelSpec, PromptKind
    from ..research import types as research
    from ..research.registration import RegistrationOptions, RegistrationResult
    from ..volume import Axis, Volume
    from . import messages, requests
    from . import research as research_requests

    classes: list[type] = [
        LabelledCase, IntensityMapping, Prediction, Prompts, MemoryPolicy, SAM2StopRule, StopRule,
        Direction, ObjectPrompts, ObjectResult, PropagationRequest, PropagationResult, SliceResult, Stop,
        Family, ModelSpec, PromptKind, RegistrationOptions, RegistrationResult, Axis, Volume,
        research.GridOptions, research.EverythingObject, research.EverythingResult, research.Quality,
        research.Combine, research.PriorMaps, research.ValidationSplit, research.FinetuneOptions,
        research.DiceSummary, research.FinetuneReport,
        messages.MessageKind, messages.WorkerMessage, messages.ModelReady, messages.VolumeReady, messages.Preview,
        requests.LoadModel, requests.SetVolume, requests.Predict, requests.Propagate, requests.Download,
        requests.Cancel, *research_requests.RESEARCH_REQUESTS, research_requests.PriorMapsReady,
        research_requests.FineTuned,
    ]  # fmt: skip
    table = {cls.__name__: cls for cls in classes}
    assert len(table) == len(classes), "wire type names must be unique"
    return table


WIRE_TYPES = _wire_types()


def encode(value: Any) -> list[bytes | memoryview]:
    """``value`` as a frame, in pieces to send one after another (arrays are not copied)."""
    blobs: list[memoryview] = []
    body = _encode(value, blobs)
    header = json.dumps({"body": body, "blobs": [blob.nbytes for blob in blobs]}, separators=(",", ":")).encode()
    return [_PREFIX.pack(MAGIC, PROTOCOL_VERSION, len(header)), header, *blobs]


def encode_bytes(value: Any) -> bytes:
    return b"".join(encode(value))


def frame_length(pieces: Iterable[bytes | memoryview]) -> int:
    return sum(memoryview(piece).nbytes for piece in pieces)


def decode(frame: bytes | bytearray | memoryview) -> Any:
    """The value of a whole frame; ProtocolVersionError or ProtocolError if it is not one of ours.

    Arrays are views of ``frame`` where it is writable (a bytearray), else copies.
    """
    view = memoryview(frame).cast("B")
    if view.nbytes < _PREFIX.size:
        raise ProtocolError("The engine's answer is truncated.")
    magic, version, header_length = _PREFIX.unpack_from(view)
    if magic != MAGIC:
        raise ProtocolError("This is not a SAMSegment engine frame.")
    if version != PROTOCOL_VERSION:
        raise ProtocolVersionError(PROTOCOL_VERSION, version)
    start = _PREFIX.size + header_length
    if start > view.nbytes:
        raise ProtocolError("The frame's header is truncated.")
    try:
        header = json.loads(bytes(view[_PREFIX.size : start]))
        lengths = [int(length) for length in header["blobs"]]
    except (ValueError, KeyError, TypeError) as error:
        raise ProtocolError(f"The frame's header is malformed: {error}") from None
    if start + sum(lengths) != view.nbytes or any(length < 0 for length in lengths):
        raise ProtocolError("The frame's length does not match its header.")
    blobs, offset = [], start
    for length in lengths:
        blobs.append(view[offset : offset + length])
        offset += length
    try:
        return _decode(header["body"], blobs)
    except ProtocolError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, zlib.error) as error:
        raise ProtocolError(f"The frame holds a malformed value: {type(error).__name__}: {error}") from None


def _encode(value: Any, blobs: list[memoryview]) -> Any:
    if isinstance(value, enum.Enum):  # first: most of ours are also strings
        return {"$enum": _wire_name(type(value)), "value": value.value}
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return _encode_array(value, blobs)
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor, on the engine side
        return _encode_array(value.detach().cpu().numpy(), blobs)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {field.name: _encode(getattr(value, field.name), blobs) for field in dataclasses.fields(value)}
        return {"$type": _wire_name(type(value)), "fields": fields}
    if isinstance(value, list):
        return [_encode(item, blobs) for item in value]
    if isinstance(value, tuple):
        return {"$tuple": [_encode(item, blobs) for item in value]}
    if isinstance(value, (set, frozenset)):
        return {"$set": [_encode(item, blobs) for item in value], "frozen": isinstance(value, frozenset)}
    if isinstance(value, dict):
        return {"$dict": [[_encode(key, blobs), _encode(item, blobs)] for key, item in value.items()]}
    if isinstance(value, range):
        return {"$range": [value.start, value.stop, value.step]}
    if isinstance(value, Path):
        return {"$path": str(value)}
    if type(value).__name__ == "AffineTransform" and hasattr(value, "GetMatrix"):  # SimpleITK, registration
        return {
            "$affine": {
                "matrix": list(value.GetMatrix()),
                "translation": list(value.GetTranslation()),
                "center": list(value.GetCenter()),
            }
        }
    raise ProtocolError(f"A {type(value).__name__} cannot be sent to or from the SAM engine.")


def _wire_name(cls: type) -> str:
    if WIRE_TYPES.get(cls.__name__) is not cls:
        raise ProtocolError(f"A {cls.__name__} cannot be sent to or from the SAM engine.")
    return cls.__name__


def _encode_array(array: np.ndarray, blobs: list[memoryview]) -> dict[str, Any]:
    if array.dtype.kind not in _ARRAY_KINDS:
        raise ProtocolError(f"Arrays of {array.dtype} cannot be sent to or from the SAM engine.")
    entry: dict[str, Any] = {"$array": len(blobs), "shape": list(array.shape)}
    if array.dtype == np.bool_:
        blobs.append(memoryview(zlib.compress(np.packbits(array, axis=None).tobytes(), _MASK_COMPRESSION_LEVEL)))
        entry["codec"] = "bits-zlib"
    else:
        contiguous = np.ascontiguousarray(array)
        blobs.append(contiguous.data.cast("B") if contiguous.size else memoryview(b""))
        entry["dtype"] = contiguous.dtype.str
    return entry


def _decode(value: Any, blobs: list[memoryview]) -> Any:
    if isinstance(value, list):
        return [_decode(item, blobs) for item in value]
    if not isinstance(value, dict):
        return value
    if "$array" in value:
        return _decode_array(value, blobs)
    if "$type" in value:
        cls = _wire_class(value["$type"])
        if not dataclasses.is_dataclass(cls):
            raise ProtocolError(f"{value['$type']} is not a message type.")
        known = {field.name: field for field in dataclasses.fields(cls)}
        fields = {name: _decode(item, blobs) for name, item in value["fields"].items()}
        unknown = set(fields) - set(known)
        if unknown:
            raise ProtocolError(f"{value['$type']} has no field {sorted(unknown)[0]!r}.")
        init = {name: item for name, item in fields.items() if known[name].init}
        instance = cls(**init)
        for name, item in fields.items():
            if not known[name].init:
                object.__setattr__(instance, name, item)
        return instance
    if "$enum" in value:
        return _wire_class(value["$enum"])(value["value"])
    if "$tuple" in value:
        return tuple(_decode(item, blobs) for item in value["$tuple"])
    if "$set" in value:
        items = [_decode(item, blobs) for item in value["$set"]]
        return frozenset(items) if value.get("frozen") else set(items)
    if "$dict" in value:
        return {_decode(key, blobs): _decode(item, blobs) for key, item in value["$dict"]}
    if "$range" in value:
        return range(*(int(part) for part in value["$range"]))
    if "$path" in value:
        return Path(value["$path"])
    if "$affine" in value:
        import SimpleITK as sitk

        parts = value["$affine"]
        transform = sitk.AffineTransform(3)
        transform.SetMatrix([float(x) for x in parts["matrix"]])
        transform.SetTranslation([float(x) for x in parts["translation"]])
        transform.SetCenter([float(x) for x in parts["center"]])
        return transform
    raise ProtocolError("The frame holds a value of no known kind.")


def _wire_class(name: str) -> type:
    cls = WIRE_TYPES.get(name)
    if cls is None:
        raise ProtocolError(f"{name!r} is not part of the SAM engine protocol.")
    return cls


def _decode_array(entry: dict[str, Any], blobs: list[memoryview]) -> np.ndarray:
    blob = blobs[int(entry["$array"])]
    shape = tuple(int(side) for side in entry["shape"])
    if any(side < 0 for side in shape):
        raise ProtocolError("An array in the frame has a negative size.")
    count = int(np.prod(shape, dtype=np.int64))
    if entry.get("codec") == "bits-zlib":
        decompressor = zlib.decompressobj()
        packed = decompressor.decompress(blob, (count + 7) // 8 + 1)  # bounded: no zip bomb
        if len(packed) != (count + 7) // 8:
            raise ProtocolError("A mask in the frame has the wrong size.")
        return np.unpackbits(np.frombuffer(packed, np.uint8), count=count).astype(bool).reshape(shape)
    dtype = np.dtype(entry["dtype"])
    if dtype.kind not in _ARRAY_KINDS:
        raise ProtocolError(f"Arrays of {dtype} are not part of the SAM engine protocol.")
    if blob.nbytes != count * dtype.itemsize:
        raise ProtocolError("An array in the frame has the wrong size.")
    array = np.frombuffer(blob, dtype).reshape(shape)
    return array if not blob.readonly else array.copy()
