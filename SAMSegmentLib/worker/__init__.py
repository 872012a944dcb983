"""The persistent inference worker: one thread owns the models; the GUI submits and polls."""

from ..protocol.messages import MessageKind, ModelReady, Preview, VolumeReady, WorkerMessage
from ..protocol.requests import Cancel, Download, LoadModel, Predict, Propagate, Request, SetVolume
from ..protocol.research import (
    ComputePriorMaps,
    FineTune,
    FineTuned,
    PriorMapsReady,
    Register,
    SegmentEverything,
)
from . import research_jobs  # noqa: F401 - registers the research tools' requests with the worker
from .prefetch import neighbour_order
from .sam2_sessions import SAM2Model
from .session import ModelLoader, WorkerSettings
from .worker import InferenceWorker

__all__ = [
    "Cancel",
    "ComputePriorMaps",
    "Download",
    "FineTune",
    "FineTuned",
    "InferenceWorker",
    "LoadModel",
    "MessageKind",
    "ModelLoader",
    "ModelReady",
    "Predict",
    "Preview",
    "PriorMapsReady",
    "Propagate",
    "Register",
    "Request",
    "SAM2Model",
    "SegmentEverything",
    "SetVolume",
    "VolumeReady",
    "WorkerMessage",
    "WorkerSettings",
    "neighbour_order",
]
