"""Requests served by tools outside the worker's core (the research tools): each tool registers
a handler for its request types, and the worker serves whatever is registered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..cancel import CancelToken, Progress
from .session import InferenceSession

# (the worker's session, the request, its cancel token, its progress) -> the RESULT value
JobHandler = Callable[[InferenceSession, Any, CancelToken, Progress], object]

_HANDLERS: dict[type, JobHandler] = {}


def register_job(request_type: type, handler: JobHandler) -> None:
    """Serve requests of ``request_type`` with ``handler`` in every worker made from now on."""
    _HANDLERS[request_type] = handler


def registered_jobs() -> dict[type, JobHandler]:
    return dict(_HANDLERS)
