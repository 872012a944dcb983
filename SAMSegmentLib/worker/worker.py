"""The one thread that owns the models and torch, inside the engine's process.

Whoever holds it (the engine service's session; the CLI and tests directly) submits requests
and polls for messages; it never waits on the models. The requests and messages are those of
``SAMSegmentLib.protocol``. Every request gets exactly one final message (RESULT, STALE, CANCELLED,
ERROR or OUT_OF_MEMORY), after any PROGRESS or SLICE messages of its own, and messages
come out of ``poll`` in the order they were produced. What each RESULT holds:
LoadModel -> ModelReady, SetVolume -> VolumeReady, Predict -> Preview,
Propagate -> PropagationResult, Download -> the checkpoint's Path,
Cancel -> the ids it dropped or told to stop; the research requests (segment everything,
prior maps, fine-tuning, registration) as ``protocol.research`` says.

What the caller no longer wants is not delivered:

* a Predict supersedes every earlier Predict: queued ones are dropped without running,
  and one that is running, or whose answer is not yet polled, ends STALE instead of
  delivering its mask;
* Cancel drops queued requests at once (final CANCELLED), ends a running or unpolled
  Predict CANCELLED, stops a running download or research request, and stops a running
  propagation (mask carrying: inside the slice's encoder call; SAM 2: before its next
  slice): its final CANCELLED message holds the partial
  PropagationResult, which has masks on exactly the slices already reported by SLICE messages;
* LoadModel and SetVolume that have started always finish and report their RESULT, so
  the caller always knows which model and volume the worker holds.

When idle after a Predict (or a SetVolume with a focus slice) the worker embeds the
neighbouring slices in the order propagation uses them (see ``prefetch``). A request
that arrives meanwhile interrupts the running encoder call (about 1 s with LiteMedSAM
on a laptop CPU) and is served at once; a Predict on the slice being embedded waits for
it instead, as it needs it. Set ``WorkerSettings.prefetch_slices`` to 0 to turn this off.

SAM 2 family models (SAM 2.1, MedSAM2) take the same requests: a preview and a propagation
of the same object (``Predict.object_id``, the PropagationRequest's object ids) share SAM 2's
memory, so a correction on any slice after a propagation, and the propagation after it, use
what the earlier ones found; ``SetVolume.memory_policy`` chooses SAM 2's memory. They are not
prefetched. See ``sam2_sessions``.
"""

from __future__ import annotations

import itertools
import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..cache import EmbeddingCache
from ..cancel import Progress
from ..errors import CancelledError
from ..models import ImageEmbedding
from ..predictor import VolumePredictor
from ..propagation import CancelToken, Direction, SliceResult
from ..protocol.messages import MessageKind, WorkerMessage
from ..protocol.requests import Cancel, Download, LoadModel, Predict, Propagate, Request, SetVolume
from ..volume import Axis
from .failures import failure_message
from .jobs import registered_jobs
from .prefetch import Prefetch
from .session import InferenceSession, ModelLoader, WorkerSettings

logger = logging.getLogger(__name__)

_DROP_TEXT = {
    MessageKind.STALE: "Superseded by a newer prompt.",
    MessageKind.CANCELLED: "Cancelled.",
}


class _Stop:
    """What the worker thread takes when the worker is closing."""


_STOP = _Stop()


@dataclass(eq=False)
class _Ticket:
    """A submitted request and what has happened to it; guarded by the worker's lock."""

    request_id: int
    request: Request
    cancel: CancelToken = field(default_factory=CancelToken)
    started: bool = False
    finished: bool = False  # its final message is in the outbox
    dropped: MessageKind | None = None  # STALE or CANCELLED once the caller no longer wants it


class InferenceWorker:
    """Serves requests on one persistent daemon thread; see the module documentation."""

    def __init__(self, settings: WorkerSettings | None = None, loader: ModelLoader | None = None) -> None:
        """``loader`` builds the model for a LoadModel; by default the registry's ``load_model``."""
        self.settings = settings or WorkerSettings()
        self._session = InferenceSession(self.settings, loader)
        self._jobs = registered_jobs()  # long work of the tools outside the core, cancellable like a propagation
        self._handlers: dict[type, Callable[[_Ticket], tuple[MessageKind, object]]] = {
            LoadModel: self._load_model,
            SetVolume: self._set_volume,
            Predict: self._predict,
            Propagate: self._propagate,
            Download: self._download,
            **dict.fromkeys(self._jobs, self._job),
        }
        self._lock = threading.Condition()
        self._inbox: deque[_Ticket] = deque()
        self._live: dict[int, _Ticket] = {}  # submitted, final message not yet polled
        self._outbox: queue.SimpleQueue[WorkerMessage] = queue.SimpleQueue()
        self._ids = itertools.count(1)
        self._idle = False
        self._stopping = False
        # Set by the worker thread; other threads only interrupt it (see _interrupt_prefetch).
        self._prefetch: Prefetch | None = None
        self._thread = threading.Thread(target=self._serve, name="SAMSegment inference", daemon=True)
        self._thread.start()

    # ----- any thread -----

    def submit(self, request: Request) -> int:
        """Queue ``request`` and return its id; a Cancel takes effect at once."""
        if not isinstance(request, Cancel) and type(request) not in self._handlers:
            raise TypeError(f"The inference worker cannot serve a {type(request).__name__}.")
        with self._lock:
            if self._stopping:
                raise RuntimeError("The inference worker has been shut down.")
            ticket = _Ticket(next(self._ids), request)
            self._live[ticket.request_id] = ticket
            if isinstance(request, Cancel):
                ticket.started = ticket.finished = True
                cancelled = self._cancel_locked(request.request_id)
                self._outbox.put(WorkerMessage(ticket.request_id, MessageKind.RESULT, cancelled))
                return ticket.request_id
            self._interrupt_prefetch(request)
            if isinstance(request, Predict):
                for other in list(self._live.values()):
                    if other is not ticket and isinstance(other.request, Predict):
                        self._drop_locked(other, MessageKind.STALE)
            self._inbox.append(ticket)
            self._idle = False
            self._lock.notify_all()
        return ticket.request_id

    def cancel(self, request_id: int | None = None) -> int:
        """Shorthand for ``submit(Cancel(request_id))``."""
        return self.submit(Cancel(request_id))

    def poll(self, timeout: float = 0.0) -> list[WorkerMessage]:
        """Every message produced since the last poll, in order. With a ``timeout`` (seconds), waits
        that long at most for the first one (the engine service's long poll); else never blocks."""
        delivered: list[WorkerMessage] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                if delivered or remaining <= 0:
                    message = self._outbox.get_nowait()
                else:
                    message = self._outbox.get(timeout=remaining)
            except queue.Empty:
                return delivered
            self._deliver(message, delivered)

    def wait(self, request_id: int, timeout: float | None = None) -> list[WorkerMessage]:
        """Block until the final message of ``request_id``; return every message polled meanwhile.

        For the CLI and tests; the GUI polls instead. Raises TimeoutError after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delivered: list[WorkerMessage] = []
        while not (delivered and delivered[-1].request_id == request_id and delivered[-1].kind.final):
            remaining = None if deadline is None else deadline - time.monotonic()
            try:
                if remaining is not None and remaining <= 0:
                    raise queue.Empty
                message = self._outbox.get(timeout=remaining)
            except queue.Empty:
                raise TimeoutError(f"Request {request_id} did not finish within {timeout} s.") from None
            self._deliver(message, delivered)
        return delivered

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no request is queued or running and prefetching is done; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self._idle and not self._inbox, timeout)

    def shutdown(self, timeout: float | None = 30.0) -> bool:
        """Cancel everything, stop the thread and join it; True if it ended within ``timeout``.

        Background embedding is interrupted; a running request's encoder call is not, so
        this can take one slice's time. Messages produced before the end can still be polled.
        """
        with self._lock:
            if not self._stopping:
                self._stopping = True
                for ticket in list(self._live.values()):
                    self._drop_locked(ticket, MessageKind.CANCELLED)
                self._interrupt_prefetch(None)
                self._lock.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("The inference worker did not stop within %s s.", timeout)
            return False
        return True

    def __enter__(self) -> InferenceWorker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    @property
    def is_alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def cache(self) -> EmbeddingCache[ImageEmbedding]:
        return self._session.cache

    @property
    def predictor(self) -> VolumePredictor | None:
        """The worker thread's predictor, for inspection while the worker is idle."""
        return self._session.predictor

    def _deliver(self, message: WorkerMessage, into: list[WorkerMessage]) -> None:
        with self._lock:
            ticket = self._live.get(message.request_id)
            if message.kind.final:
                self._live.pop(message.request_id, None)
            if ticket is not None and ticket.dropped is not None:
                if message.kind is MessageKind.PROGRESS:
                    return
                if message.kind.final and isinstance(ticket.request, Predict):
                    message = WorkerMessage(message.request_id, ticket.dropped, text=_DROP_TEXT[ticket.dropped])
        into.append(message)

    def _cancel_locked(self, request_id: int | None) -> tuple[int, ...]:
        if request_id is None:
            targets = list(self._live.values())
        else:
            targets = [self._live[request_id]] if request_id in self._live else []
        return tuple(t.request_id for t in targets if self._drop_locked(t, MessageKind.CANCELLED))

    def _drop_locked(self, ticket: _Ticket, kind: MessageKind) -> bool:
        """Mark ``ticket`` unwanted; False when it is too late: a model or volume change that has
        started, or a propagation or download that has already reported its outcome."""
        if ticket.dropped is not None or isinstance(ticket.request, Cancel):
            return False
        if ticket.started and not isinstance(ticket.request, Predict):
            if ticket.finished or not isinstance(ticket.request, (Propagate, Download, *self._jobs)):
                return False
        ticket.dropped = kind
        ticket.cancel.cancel()
        if not ticket.started:
            self._inbox.remove(ticket)
            ticket.started = ticket.finished = True
            self._outbox.put(WorkerMessage(ticket.request_id, kind, text=_DROP_TEXT[kind]))
        return True

    def _interrupt_prefetch(self, request: Request | None) -> None:
        """A new request (or shutting down: None) does not wait for background embedding,
        unless it will use the very slice being embedded."""
        prefetch = self._prefetch
        if prefetch is not None and not _uses_slice(request, prefetch.axis, prefetch.embedding):
            prefetch.cancel.cancel()

    # ----- worker thread -----

    def _serve(self) -> None:
        while not isinstance(ticket := self._take(wait=self._prefetch is None), _Stop):
            if ticket is None:
                self._prefetch_step()
                continue
            self._prefetch = None
            self._run(ticket)
        self._prefetch = None
        with self._lock:
            self._idle = True
            self._lock.notify_all()

    def _take(self, wait: bool) -> _Ticket | _Stop | None:
        """The next request, None when there is none and ``wait`` is False, or _STOP."""
        with self._lock:
            while not self._inbox and not self._stopping:
                if not wait:
                    return None
                self._idle = True
                self._lock.notify_all()
                self._lock.wait()
            if self._stopping:
                return _STOP
            ticket = self._inbox.popleft()
            ticket.started = True
            return ticket

    def _run(self, ticket: _Ticket) -> None:
        try:
            kind, value = self._handlers[type(ticket.request)](ticket)
            message = WorkerMessage(ticket.request_id, kind, value, _DROP_TEXT.get(kind, ""))
        except Exception as error:  # noqa: BLE001 - reported to the caller; the worker must go on
            message = failure_message(ticket.request_id, error)
        with self._lock:
            ticket.finished = True
            self._outbox.put(message)

    def _prefetch_step(self) -> None:
        assert self._prefetch is not None
        try:
            if not self._prefetch.step():
                self._prefetch = None
        except CancelledError:  # interrupted by a request, which is served next
            self._prefetch = None
        except Exception:
            logger.warning("Background embedding of neighbouring slices stopped.", exc_info=True)
            self._prefetch = None

    def _emit(self, ticket: _Ticket, kind: MessageKind, value: object, text: str = "") -> None:
        self._outbox.put(WorkerMessage(ticket.request_id, kind, value, text))

    def _progress(self, ticket: _Ticket) -> Progress:
        """The ticket's progress as PROGRESS messages: ``(done, total)``, the stage as their text."""

        def report(done: int, total: int, stage: str = "") -> None:
            self._emit(ticket, MessageKind.PROGRESS, (done, total), stage)

        return report

    def _load_model(self, ticket: _Ticket) -> tuple[MessageKind, object]:
        assert isinstance(ticket.request, LoadModel)
        return MessageKind.RESULT, self._session.load_model(ticket.request)

    def _set_volume(self, ticket: _Ticket) -> tuple[MessageKind, object]:
        request = ticket.request
        assert isinstance(request, SetVolume)
        ready = self._session.set_volume(request)
        if request.focus is not None:
            self._prefetch = self._session.prefetch(*request.focus)
        return MessageKind.RESULT, ready

    def _predict(self, ticket: _Ticket) -> tuple[MessageKind, object]:
        request = ticket.request
        assert isinstance(request, Predict)
        preview = self._session.predict(request)
        self._prefetch = self._session.prefetch(request.axis, request.index, request.prompts)
        return MessageKind.RESULT, preview

    def _propagate(self, ticket: _Ticket) -> tuple[MessageKind, object]:
        assert isinstance(ticket.request, Propagate)

        def on_slice(result: SliceResult) -> None:
            self._emit(ticket, MessageKind.SLICE, result)

        result = self._session.propagate(ticket.request, ticket.cancel, on_slice, self._progress(ticket))
        if not ticket.request.volume_masks:
            for outcome in result.objects.values():
                outcome.mask = np.zeros((0, 0, 0), bool)
        return (MessageKind.CANCELLED if result.cancelled else MessageKind.RESULT), result

    def _download(self, ticket: _Ticket) -> tuple[MessageKind, object]:
        assert isinstance(ticket.request, Download)
        return MessageKind.RESULT, self._session.download(ticket.request, ticket.cancel, self._progress(ticket))

    def _job(self, ticket: _Ticket) -> tuple[MessageKind, object]:
        handler = self._jobs[type(ticket.request)]
        return MessageKind.RESULT, handler(self._session, ticket.request, ticket.cancel, self._progress(ticket))


def _uses_slice(request: Request | None, axis: Axis, index: int | None) -> bool:
    """Whether ``request`` will embed slice ``index`` along ``axis`` of the current volume."""
    if index is None:
        return False
    if isinstance(request, Predict):
        return (Axis(request.axis), request.index) == (axis, index)
    if isinstance(request, Propagate):
        wanted = request.request
        first, last = sorted(wanted.slice_range) if wanted.slice_range is not None else (-math.inf, math.inf)
        if wanted.direction is Direction.FORWARD:
            first = max(first, wanted.seed_index)
        elif wanted.direction is Direction.BACKWARD:
            last = min(last, wanted.seed_index)
        return Axis(wanted.axis) is axis and first <= index <= last
    return False
