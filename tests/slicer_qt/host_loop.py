"""A stand-in for Slicer's Qt event loop that idles while HOLDING the GIL.

Slicer embeds CPython and runs ``QApplication::exec()`` without releasing the GIL (no
``PyEval_SaveThread`` / ``Py_BEGIN_ALLOW_THREADS`` around the event loop in Slicer's
Base/QTGUI/qSlicerApplication.cxx, CTK's ctkAbstractPythonManager or commontk/PythonQt). Python
code runs only inside Qt callbacks: QTimer timeouts, QSocketNotifier activations, signal slots,
VTK observers. A ``threading.Thread`` gets the GIL only while one of those callbacks runs.

This loop reproduces that: it waits for the next timer or for a registered socket notifier's file
descriptor in C, in libc ``poll()`` called through ``ctypes.PyDLL`` (``idle_holding_gil``: PyDLL
calls do not release the GIL, unlike ``ctypes.CDLL`` calls and ``time.sleep``), then runs the due
callbacks in Python.

How code plugs into it (through the fake ``qt`` module, as in Slicer):
- ``qt.QTimer`` (single-shot or repeating) registers with :func:`current` when started;
- ``qt.QSocketNotifier(fd, qt.QSocketNotifier.Read)`` registers its fd while enabled; its
  ``activated(int)`` signal fires when ``poll()`` reports the fd ready (Read: POLLIN/POLLHUP,
  Write: POLLOUT, Exception: POLLPRI), as ``QSocketNotifier`` does;
- ``slicer.app.processEvents()`` runs what is due without waiting (poll timeout 0);
- tests call :meth:`HostLoop.runUntil` instead of sleeping.
"""

from __future__ import annotations

import heapq
import itertools
import select
import time
from collections.abc import Callable

from SAMSegmentLib.bench.host_loop import idle_holding_gil

READ, WRITE, EXCEPTION = 0, 1, 2  # QSocketNotifier::Type
_EVENTS = {READ: select.POLLIN, WRITE: select.POLLOUT, EXCEPTION: select.POLLPRI}
_READY = {
    READ: select.POLLIN | select.POLLHUP | select.POLLERR,
    WRITE: select.POLLOUT | select.POLLERR | select.POLLHUP,
    EXCEPTION: select.POLLPRI,
}


class HostLoop:
    """Timers and socket notifiers of one fake Qt application, run on the calling (main) thread."""

    def __init__(self) -> None:
        self._timers: list[tuple[float, int, object]] = []  # (due, sequence, timer) heap
        self._sequence = itertools.count()
        self._notifiers: list[object] = []  # enabled qt.QSocketNotifier objects
        self.longestCallbackSeconds = 0.0  # the longest single callback: a GUI-thread stall
        self.longestCallbackName = ""
        self.idleSeconds = 0.0  # time spent in poll() holding the GIL

    # ----- registration (called by the fake qt classes) -----

    def addTimer(self, timer: object, intervalMs: int) -> None:
        heapq.heappush(self._timers, (time.monotonic() + max(0, intervalMs) / 1000.0, next(self._sequence), timer))

    def removeTimer(self, timer: object) -> None:
        self._timers = [entry for entry in self._timers if entry[2] is not timer]
        heapq.heapify(self._timers)

    def addNotifier(self, notifier: object) -> None:
        if notifier not in self._notifiers:
            self._notifiers.append(notifier)

    def removeNotifier(self, notifier: object) -> None:
        if notifier in self._notifiers:
            self._notifiers.remove(notifier)

    @property
    def activeTimerCount(self) -> int:
        return len(self._timers)

    @property
    def notifierCount(self) -> int:
        return len(self._notifiers)

    # ----- running -----

    def processEvents(self) -> None:
        """What ``QCoreApplication::processEvents()`` does: run what is due now, never wait."""
        self._iterate(0.0)

    def runFor(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._iterate(deadline - time.monotonic())

    def runUntil(self, condition: Callable[[], bool], timeout: float = 60.0, message: str = "") -> None:
        """Run the loop until ``condition()`` is true (checked after each wake-up, as a slot would);
        fails with AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"Timed out after {timeout:.0f} s waiting for: {message or condition}")
            self._iterate(min(remaining, 0.25))

    def _iterate(self, maxWaitSeconds: float) -> None:
        now = time.monotonic()
        waitSeconds = maxWaitSeconds
        if self._timers:
            waitSeconds = min(waitSeconds, max(0.0, self._timers[0][0] - now))
        self._wait(max(0.0, waitSeconds))
        self._runDueTimers()

    def _wait(self, seconds: float) -> None:
        """Idle in C holding the GIL until a notifier's fd is ready or ``seconds`` pass."""
        notifiers = [n for n in self._notifiers if n.isEnabled()]
        started = time.monotonic()
        ready = idle_holding_gil([(n.socket(), _EVENTS[n.type()]) for n in notifiers], int(seconds * 1000 + 0.999))
        self.idleSeconds += time.monotonic() - started
        for revents, notifier in zip(ready, notifiers):
            if revents & _READY[notifier.type()] and notifier.isEnabled():
                self._timed(lambda n=notifier: n.activated.emit(n.socket()), notifier)

    def _runDueTimers(self) -> None:
        now = time.monotonic()
        due = []
        while self._timers and self._timers[0][0] <= now:
            due.append(heapq.heappop(self._timers)[2])
        for timer in due:
            self._timed(timer._fire, timer)  # a repeating timer re-registers itself first

    def _timed(self, callback: Callable[[], None], source: object) -> None:
        started = time.perf_counter()
        try:
            callback()
        finally:
            elapsed = time.perf_counter() - started
            if elapsed > self.longestCallbackSeconds:
                self.longestCallbackSeconds, self.longestCallbackName = elapsed, repr(source)


_current: HostLoop | None = None


def current() -> HostLoop:
    """The loop of the running fake application (one per test)."""
    global _current
    if _current is None:
        _current = HostLoop()
    return _current


def reset() -> HostLoop:
    global _current
    _current = HostLoop()
    return _current
