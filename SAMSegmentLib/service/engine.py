"""The engine service's core, free of any transport: sessions, each with its own inference worker,
that take batches of requests and hand out their messages.

A session is what one client holds: a Slicer process (the effect and its module panels share it),
or a script. Its ``InferenceWorker`` keeps the model, the volume and its embeddings. Clients
choose their request ids, so they can track a request before the engine has answered; the
session maps them to the worker's.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from .. import __version__
from ..cache import DEFAULT_BUDGET_BYTES
from ..errors import SAMSegmentError
from ..memory_use import peak_rss_mb
from ..protocol import PROTOCOL_VERSION, Cancel, MessageKind, Request, WorkerMessage
from ..registry import MODELS
from ..worker import InferenceWorker, WorkerSettings

logger = logging.getLogger(__name__)
_REFUSAL_CHECK_S = 0.1


class SessionLostError(SAMSegmentError):
    """The session is unknown here: it expired, or the engine restarted since it was opened."""


@dataclass
class ServiceSettings:
    max_sessions: int = 8  # each holds a model and a volume's embeddings
    idle_session_s: float = 3600.0  # a session unused this long is closed and its memory freed
    max_wait_s: float = 20.0  # the longest a client's message poll is held open
    # Bounds the embeddings of all sessions together; each session gets an equal share.
    embedding_budget_bytes: int = 8 * DEFAULT_BUDGET_BYTES
    expiry_check_s: float = 30.0  # how often idle sessions are looked for

    @property
    def session_budget_bytes(self) -> int:
        return self.embedding_budget_bytes // max(1, self.max_sessions)


# Builds a session's worker; its argument is the session's share of the embedding budget (bytes).
WorkerFactory = Callable[[int], InferenceWorker]


def default_worker(cache_budget_bytes: int) -> InferenceWorker:
    return InferenceWorker(WorkerSettings(cache_budget_bytes=cache_budget_bytes))


class ServiceSession:
    def __init__(self, session_id: str, worker: InferenceWorker, owner: str = "") -> None:
        self.session_id = session_id
        self.worker = worker
        self.owner = owner  # a digest of the token that opened it (routes.Tokens.owner)
        self.last_used = time.monotonic()
        self._lock = threading.Lock()
        self._to_worker: dict[int, int] = {}  # client's request id -> worker's, until final
        self._to_client: dict[int, int] = {}  # kept after the final message: a Cancel's answer names them
        self._cancels: set[int] = set()  # worker ids of Cancel requests
        self._refused: deque[WorkerMessage] = deque()  # requests that never reached the worker
        self._closed = False

    def submit(self, batch: Sequence[tuple[int, Request]]) -> None:
        """Hand ``batch`` to the worker in order; a request it refuses gets a final ERROR."""
        with self._lock:
            self.last_used = time.monotonic()
            for client_id, request in batch:
                if client_id in self._to_worker:
                    self._refused.append(_error(client_id, f"Request id {client_id} is already in use."))
                    continue
                if isinstance(request, Cancel) and request.request_id is not None:
                    target = self._to_worker.get(request.request_id)
                    if target is None:  # already answered: nothing to cancel
                        self._refused.append(WorkerMessage(client_id, MessageKind.RESULT, ()))
                        continue
                    request = Cancel(target)
                try:
                    worker_id = self.worker.submit(request)
                except (TypeError, RuntimeError) as error:
                    self._refused.append(_error(client_id, str(error)))
                    continue
                self._to_worker[client_id] = worker_id
                self._to_client[worker_id] = client_id
                if isinstance(request, Cancel):
                    self._cancels.add(worker_id)

    def messages(self, wait_s: float) -> list[WorkerMessage]:
        """Every message since the last call, with the client's ids; waits ``wait_s`` at most for one."""
        deadline = time.monotonic() + wait_s
        while True:
            with self._lock:
                refused = list(self._refused)
                self._refused.clear()
            # Short waits, so a refusal filed meanwhile by another connection is not held back long.
            remaining = deadline - time.monotonic()
            delivered = self.worker.poll(0.0 if refused else max(0.0, min(remaining, _REFUSAL_CHECK_S)))
            if refused or delivered or time.monotonic() >= deadline:
                break
        with self._lock:
            if self._closed:
                # What a closing worker says (its requests cancelled) is not the client's answer: the
                # session is gone, and the client rebuilds it and reports what was in flight as lost.
                raise SessionLostError("The SAM engine closed this session.")
            self.last_used = time.monotonic()
            return refused + [self._for_client(message) for message in delivered]

    def _for_client(self, message: WorkerMessage) -> WorkerMessage:
        client_id = self._to_client.get(message.request_id, -1)
        if message.kind.final:
            self._to_worker.pop(client_id, None)
        value = message.value
        if message.request_id in self._cancels and message.kind is MessageKind.RESULT:
            stopped = cast(tuple[int, ...], value)  # a Cancel's result: the worker ids it stopped
            value = tuple(self._to_client.get(worker_id, -1) for worker_id in stopped)
        return WorkerMessage(client_id, message.kind, value, message.text)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.worker.shutdown(timeout=5.0)


def _error(request_id: int, text: str) -> WorkerMessage:
    return WorkerMessage(request_id, MessageKind.ERROR, text=text)


def new_session_id() -> str:
    return secrets.token_urlsafe(16)


class EngineService:
    """Open sessions and route requests and messages to them; thread-safe (one thread per
    connection in the HTTP server).

    A session belongs to the token that opened it (``owner``): asked for by another, it is as
    unknown as one that never existed."""

    def __init__(self, settings: ServiceSettings | None = None, worker_factory: WorkerFactory | None = None) -> None:
        self.settings = settings or ServiceSettings()
        self._worker_factory = worker_factory or default_worker
        self._sessions: dict[str, ServiceSession] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._expiry: threading.Thread | None = None

    def health(self) -> dict[str, object]:
        return {
            "protocol": PROTOCOL_VERSION,
            "engine": __version__,
            "models": sorted(MODELS),
            "sessions": len(self._sessions),
            "peak_rss_mb": peak_rss_mb(),
        }

    def open_session(self, owner: str = "", session_id: str | None = None) -> str:
        """A new session for ``owner``; ``session_id`` is chosen here unless given (a router
        that must know it first, as Ray Serve's)."""
        self.expire_idle()
        with self._lock:
            if len(self._sessions) >= self.settings.max_sessions:
                raise SAMSegmentError(
                    f"The SAM engine already serves {self.settings.max_sessions} sessions; try again later."
                )
            session_id = session_id or new_session_id()
            if session_id in self._sessions:
                raise SAMSegmentError("This session id is already in use.")
            worker = self._worker_factory(self.settings.session_budget_bytes)
            self._sessions[session_id] = ServiceSession(session_id, worker, owner)
        logger.info("Opened session %s… for token %s…", session_id[:6], owner[:6])
        return session_id

    def holds(self, session_id: str) -> bool:
        with self._lock:
            return session_id in self._sessions

    def session(self, session_id: str, owner: str = "") -> ServiceSession:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None or not hmac.compare_digest(session.owner, owner):
            raise SessionLostError("The SAM engine no longer has this session (it expired or the engine restarted).")
        return session

    def close_session(self, session_id: str, owner: str | None = None) -> None:
        """Close a session; only its owner's if ``owner`` is given (others' ids are ignored)."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None or (owner is not None and not hmac.compare_digest(session.owner, owner)):
                return
            del self._sessions[session_id]
        session.close()
        logger.info("Closed session %s…", session_id[:6])

    def expire_periodically(self) -> threading.Thread:
        """Look for idle sessions every ``expiry_check_s`` until ``close``: their memory is freed
        even when nobody opens a new session."""
        if self._expiry is None:
            self._expiry = threading.Thread(target=self._expire_loop, name="session expiry", daemon=True)
            self._expiry.start()
        return self._expiry

    def _expire_loop(self) -> None:
        while not self._closed.wait(self.settings.expiry_check_s):
            try:
                self.expire_idle()
            except Exception:
                logger.exception("Closing idle sessions failed")

    def expire_idle(self) -> None:
        limit = time.monotonic() - self.settings.idle_session_s
        with self._lock:
            idle = [sid for sid, session in self._sessions.items() if session.last_used < limit]
        for session_id in idle:
            logger.info("Session %s… was idle for %.0f s: closing it.", session_id[:6], self.settings.idle_session_s)
            self.close_session(session_id)

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            sessions = list(self._sessions)
        for session_id in sessions:
            self.close_session(session_id)
