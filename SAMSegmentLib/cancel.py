"""The one progress and one cancel contract of long work.

Progress: a :class:`Progress` callable, called as ``progress(done, total)`` or
``progress(done, total, stage)``; ``total`` is 0 while unknown. Cancel: a :class:`CancelToken`,
set from any thread; the work stops at its next step, or at once inside a running encoder.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol


class Progress(Protocol):
    """How far long work is: ``done`` of ``total`` steps (0: not known yet), in ``stage`` (text a person reads)."""

    def __call__(self, done: int, total: int, stage: str = "") -> None: ...


class CancelToken:
    """Set from any thread. Loops check ``cancelled`` between steps; work that cannot look
    (an encoder running in ONNX Runtime) registers a way to stop with ``stopping_with``."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._stoppers: list[Callable[[], None]] = []

    def cancel(self) -> None:
        with self._lock:
            self._event.set()
            stoppers = list(self._stoppers)
        for stop in stoppers:  # on the cancelling thread: the work itself is busy
            stop()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    @contextmanager
    def stopping_with(self, stop: Callable[[], None]) -> Iterator[None]:
        """Inside the block, cancelling calls ``stop`` (at once if already cancelled)."""
        with self._lock:
            self._stoppers.append(stop)
            already = self._event.is_set()
        if already:
            stop()
        try:
            yield
        finally:
            with self._lock:
                self._stoppers.remove(stop)
