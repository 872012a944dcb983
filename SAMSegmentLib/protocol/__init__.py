"""The engine protocol: what a client (the Slicer effect, the CLI, a test) asks the SAM engine
and what the engine answers, importable without torch.

Requests are the dataclasses of ``requests`` and ``research``; every request gets
``WorkerMessage``s back (``messages``), exactly one of them final. The same types serve the
in-process ``InferenceWorker`` and the engine service (``SAMSegmentLib.service``), which carries
them in ``codec`` frames over HTTP.
"""

from .codec import PROTOCOL_VERSION, ProtocolError, ProtocolVersionError, decode, encode
from .messages import MessageKind, ModelReady, Preview, VolumeReady, WorkerMessage
from .requests import (
    Cancel,
    Download,
    LoadModel,
    Predict,
    Propagate,
    Request,
    SetVolume,
)
from .research import (
    ComputePriorMaps,
    FineTune,
    FineTuned,
    PriorMapsReady,
    Register,
    SegmentEverything,
)

__all__ = [
    "PROTOCOL_VERSION",
    "Cancel",
    "ComputePriorMaps",
    "Download",
    "FineTune",
    "FineTuned",
    "LoadModel",
    "MessageKind",
    "ModelReady",
    "Predict",
    "Preview",
    "PriorMapsReady",
    "Propagate",
    "ProtocolError",
    "ProtocolVersionError",
    "Register",
    "Request",
    "SegmentEverything",
    "SetVolume",
    "VolumeReady",
    "WorkerMessage",
    "decode",
    "encode",
]
