"""Turn an exception raised while serving a request into the message the GUI shows."""

from __future__ import annotations

import logging

import torch

from ..errors import CancelledError, InferenceOutOfMemoryError, SAMSegmentError
from ..protocol.messages import MessageKind, WorkerMessage

logger = logging.getLogger(__name__)


def failure_message(request_id: int, error: Exception) -> WorkerMessage:
    """Our own errors carry a message written for the user; anything else is a bug, so its
    type is shown and its traceback logged."""
    if isinstance(error, InferenceOutOfMemoryError):
        return WorkerMessage(request_id, MessageKind.OUT_OF_MEMORY, text=str(error))
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):  # outside the predictor: loading a model
        return WorkerMessage(request_id, MessageKind.OUT_OF_MEMORY, text=f"Out of memory: {error}")
    if isinstance(error, CancelledError):
        return WorkerMessage(request_id, MessageKind.CANCELLED, text=str(error))
    if isinstance(error, SAMSegmentError):
        return WorkerMessage(request_id, MessageKind.ERROR, text=str(error))
    logger.error("Request %d failed unexpectedly", request_id, exc_info=error)
    return WorkerMessage(request_id, MessageKind.ERROR, text=f"{type(error).__name__}: {error}")
