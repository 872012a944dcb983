"""Stand-ins for Slicer's Qt event loop, for tests and ``samsegment bench``.

Slicer never releases Python's GIL around its event loop (see ../shared/notes/measured-facts.md),
so Python threads in the Slicer process only run while the main thread runs Python. Qt's loop on
Linux waits in ``poll()`` on its sockets (QSocketNotifier) with the next timer's timeout
(QEventDispatcherUNIX::processEvents -> qt_safe_poll), then runs what is due. ``idle_holding_gil``
does that wait through ``ctypes.PyDLL``, whose calls keep the GIL, so anything that needs a Python
thread of this process to make progress crawls here as it would in Slicer; ``time.sleep`` would
hide it. ``GilHoldingLoop`` is a timer-and-sockets loop built on it; ``SleepingLoop`` is the same
loop idling with the GIL released, as a plain script does. (tests/slicer_qt's fake Qt event loop
idles with ``idle_holding_gil`` too.)
"""

from __future__ import annotations

import ctypes
import select
import time
from collections.abc import Callable, Sequence

_LIBC = ctypes.PyDLL(None)  # PyDLL: the GIL stays held during the call, as in Slicer


class _PollFd(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]


_LIBC.poll.argtypes = [ctypes.POINTER(_PollFd), ctypes.c_ulong, ctypes.c_int]
_LIBC.poll.restype = ctypes.c_int


def idle_holding_gil(watched: Sequence[tuple[int, int]], timeout_ms: int) -> list[int]:
    """Wait in libc ``poll()``, holding the GIL, until one of ``watched`` (file descriptor, poll
    events) is ready or ``timeout_ms`` pass; the returned events of each."""
    fds = (_PollFd * max(1, len(watched)))()
    for slot, (fd, events) in zip(fds, watched):
        slot.fd, slot.events, slot.revents = fd, events, 0
    _LIBC.poll(fds, len(watched), max(0, timeout_ms))
    return [fds[slot].revents for slot in range(len(watched))]


class GilHoldingLoop:
    """Runs ``tick`` every ``interval_s`` (a QTimer) and ``on_ready`` when a watched socket is ready
    (a QSocketNotifier); records the longest time the Python side of one step took."""

    holds_gil = True

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.longest_step_s = 0.0

    def run_until(
        self,
        done: Callable[[], bool],
        tick: Callable[[], object],
        watched: Callable[[], list[tuple[int, bool]]] = list,
        on_ready: Callable[[], object] | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        deadline = time.monotonic() + timeout_s
        next_tick = time.monotonic() + self.interval_s
        while not done():
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(f"not done within {timeout_s} s")
            sockets = watched() if on_ready is not None else []
            events = [(fd, select.POLLIN | (select.POLLOUT if write else 0)) for fd, write in sockets]
            ready = self._idle(events, max(0, int((next_tick - now) * 1000)))
            started = time.monotonic()
            if any(ready) and on_ready is not None:
                on_ready()
            if time.monotonic() >= next_tick:
                tick()
                next_tick = time.monotonic() + self.interval_s
            self.longest_step_s = max(self.longest_step_s, time.monotonic() - started)

    def _idle(self, events: list[tuple[int, int]], wait_ms: int) -> list[int]:
        return idle_holding_gil(events, wait_ms)


class SleepingLoop(GilHoldingLoop):
    """The same loop, idling with the GIL released (``select``): a script's loop, not Slicer's."""

    holds_gil = False

    def _idle(self, events: list[tuple[int, int]], wait_ms: int) -> list[int]:
        if not events:
            time.sleep(wait_ms / 1000)
            return []
        readers = [fd for fd, _ in events]
        writers = [fd for fd, mask in events if mask & select.POLLOUT]
        readable, writable, _ = select.select(readers, writers, [], wait_ms / 1000)
        return [int(fd in readable or fd in writable) for fd, _ in events]
