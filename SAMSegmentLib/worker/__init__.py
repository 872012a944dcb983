"""The persistent inference worker: one thread owns the models; the GUI submits and polls."""

from .messages import MessageKind, ModelReady, Preview, VolumeReady, WorkerMessage
from .prefetch import neighbour_order
from .requests import Cancel, Download, LoadModel, Predict, Propagate, Request, SetVolume
from .sam2_sessions import SAM2Model
from .session import ModelLoader, WorkerSettings
from .worker import InferenceWorker

__all__ = [
    "Cancel",
    "Download",
    "InferenceWorker",
    "LoadModel",
    "MessageKind",
    "ModelLoader",
    "ModelReady",
    "Predict",
    "Preview",
    "Propagate",
    "Request",
    "SAM2Model",
    "SetVolume",
    "VolumeReady",
    "WorkerMessage",
    "WorkerSettings",
    "neighbour_order",
]
