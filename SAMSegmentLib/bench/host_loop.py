"""Stand-ins for Slicer's Qt event loop, for tests and ``samsegment bench``.

``GilHoldingLoop`` idles in C while HOLDING Python's GIL, as Slicer's loop does.

Slicer never releases the GIL around its event loop (see ../shared/notes/measured-facts.md), so
Python threads in the Slicer process only run while the main thread runs Python. Qt's loop on
Linux waits in ``poll()`` on its sockets (QSocketNotifier) with the next timer's timeout
(QEventDispatcherUNIX::processEvents -> qt_safe_poll), then runs what is due. This loop does the
same through ``ctypes.PyDLL``, whose calls keep the GIL, so anything that needs a Python thread
of this process to make progress crawls here as it would in Slicer; ``time.sleep`` would hide it.
``SleepingLoop`` is the same loop idling with the GIL released: what a plain script does.
"""

from __future__ import annotations

import ctypes
import select
import time
from collections.abc import Callable

_POLLIN, _POLLOUT = 0x001, 0x004
_LIBC = ctypes.PyDLL(None)  # PyDLL: the GIL stays held during the call, as in Slicer


class _PollFd(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]


class GilHoldingLoop:
    """Runs ``tick`` every ``interval_s`` (a QTimer) and ``on_ready`` when a watched socket is ready
    (a QSocketNotifier); records the longest time the Python side of one step took."""

    holds_gil = True

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.longest_step_s = 0.0

    def _idle(self, fds: ctypes.Array[_PollFd], count: int, wait_ms: int) -> int:
        return int(_LIBC.poll(fds, count, wait_ms))  # idles holding the GIL

    def run_until(
        self,
        done: Callable[[], bool],
        tick: Callable[[], None],
        watched: Callable[[], list[tuple[int, bool]]] = list,
        on_ready: Callable[[], None] | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        deadline = time.monotonic() + timeout_s
        next_tick = time.monotonic() + self.interval_s
        while not done():
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(f"not done within {timeout_s} s")
            sockets = watched() if on_ready is not None else []
            fds = (_PollFd * max(1, len(sockets)))()
            for slot, (fd, write) in zip(fds, sockets):
                slot.fd, slot.events = fd, _POLLIN | (_POLLOUT if write else 0)
            wait_ms = max(0, int((next_tick - now) * 1000))
            ready = self._idle(fds, len(sockets), wait_ms)
            started = time.monotonic()
            if ready > 0 and on_ready is not None:
                on_ready()
            if time.monotonic() >= next_tick:
                tick()
                next_tick = time.monotonic() + self.interval_s
            self.longest_step_s = max(self.longest_step_s, time.monotonic() - started)


class SleepingLoop(GilHoldingLoop):
    """The same loop, idling with the GIL released (``select``): a script's loop, not Slicer's."""

    holds_gil = False

    def _idle(self, fds: ctypes.Array[_PollFd], count: int, wait_ms: int) -> int:
        readers = [fds[slot].fd for slot in range(count)]
        writers = [fds[slot].fd for slot in range(count) if fds[slot].events & _POLLOUT]
        if not readers:
            time.sleep(wait_ms / 1000)
            return 0
        ready = select.select(readers, writers, [], wait_ms / 1000)
        return len(ready[0]) + len(ready[1])
