"""The client of the SAM engine service: the same ``submit`` / ``cancel`` / ``poll`` as the in-process
``InferenceWorker``, over the HTTP protocol of ``SAMSegmentLib.service.http_server``, never blocking.

``poll`` (or ``pump``) moves bytes as far as the sockets allow and returns; the host calls it from
a timer and when its event loop sees one of ``watched()``'s sockets ready. Request ids are chosen
here, so a request is tracked before the engine has seen it; requests reach the engine in the
order they were submitted, batched when several are waiting.

When the engine dies (a crash, out of memory, killed) or loses the session, every request still
waiting gets a final ERROR saying so, and the next request starts over: the engine is started
again where this client started it, a new session opened, and the last LoadModel and SetVolume
sent again first, so the user's next click works (its embeddings are computed again).
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .codec import FRAME_TYPE, PROTOCOL_HEADER, PROTOCOL_VERSION, ProtocolError, decode, encode
from .connection import ConnectionLost, HttpConnection, Response
from .messages import MessageKind, WorkerMessage
from .requests import Cancel, LoadModel, Request, SetVolume

logger = logging.getLogger(__name__)

_POLL_WAIT_S = 10.0  # how long the engine may hold a message poll open
_STATE_REQUESTS = (LoadModel, SetVolume)  # what a new session needs to continue where the last one was


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    token: str


class EndpointSource(Protocol):
    """Where the engine is: a process this client starts (``service.launcher``) or a server."""

    def start(self) -> None:
        """Start the engine if it is not running; returns at once."""

    def endpoint(self) -> Endpoint | None:
        """Where to reach it, None while it is starting."""

    def failure(self) -> str | None:
        """Why it is not running or cannot start, None while it is (or may soon be) fine."""

    def stop(self) -> None:
        """Stop it if this client started it."""


@dataclass(frozen=True)
class FixedEndpoint:
    """An engine someone else runs (a department's server): nothing to start or stop."""

    address: Endpoint

    def start(self) -> None:
        pass

    def endpoint(self) -> Endpoint | None:
        return self.address

    def failure(self) -> str | None:
        return None

    def stop(self) -> None:
        pass


class EngineClient:
    def __init__(self, source: EndpointSource, poll_wait_s: float = _POLL_WAIT_S) -> None:
        self.source = source
        self.poll_wait_s = poll_wait_s
        self._ids = 0
        self._internal_ids = 0  # negative ids: state requests sent again after a restart
        self._outgoing: deque[tuple[int, Request]] = deque()
        self._pending: set[int] = set()  # submitted, final message not yet received
        self._inbox: list[WorkerMessage] = []
        self._state: dict[type, Request] = {}  # the last LoadModel and SetVolume sent
        self._session: str | None = None
        self._commands: HttpConnection | None = None
        self._messages: HttpConnection | None = None
        self._started = False
        self._restarted = False
        self.restarts = 0  # how often the engine had to be started again
        self._traffic = [0, 0]  # bytes sent and received on connections already closed

    # ----- the worker's interface -----

    def submit(self, request: Request) -> int:
        self._ids += 1
        request_id = self._ids
        if isinstance(request, Cancel) and not self._cancellable(request):
            self._inbox.append(WorkerMessage(request_id, MessageKind.RESULT, ()))
            return request_id
        self._pending.add(request_id)
        self._outgoing.append((request_id, request))
        if isinstance(request, _STATE_REQUESTS):
            self._state[type(request)] = request
        self.pump()
        return request_id

    def cancel(self, request_id: int | None = None) -> int:
        return self.submit(Cancel(request_id))

    def poll(self) -> list[WorkerMessage]:
        """Every message since the last poll, in order; never blocks."""
        self.pump()
        messages, self._inbox = self._inbox, []
        return messages

    # ----- for the host's event loop -----

    def watched(self) -> list[tuple[int, bool]]:
        """The sockets to watch: (file descriptor, also for writing); call ``pump`` when one is ready."""
        watched = []
        for connection in (self._commands, self._messages):
            if connection is not None and (fd := connection.fileno()) is not None:
                watched.append((fd, connection.wants_write))
        return watched

    def pump(self) -> None:
        """Start, connect, send and receive as far as possible without waiting."""
        if not self._started:
            if not self._outgoing:
                return
            self._start()
        try:
            if self._commands is None and not self._connect():
                return
            assert self._commands is not None and self._messages is not None
            self._commands.pump()
            self._messages.pump()
            if self._session is not None:
                self._send_requests()
                self._ask_for_messages()
                self._commands.pump()
                self._messages.pump()
        except (ConnectionLost, ProtocolError) as error:
            self._lose(self.source.failure() or f"The connection to the SAM engine broke: {error}")

    @property
    def connected(self) -> bool:
        return self._session is not None

    @property
    def session_id(self) -> str | None:
        """The engine's id of this client's current session (a new one after each restart)."""
        return self._session

    def traffic(self) -> tuple[int, int]:
        """Bytes sent to and received from the engine so far, HTTP headers included."""
        sent, received = self._traffic
        for connection in (self._commands, self._messages):
            if connection is not None:
                sent += connection.bytes_sent
                received += connection.bytes_received
        return sent, received

    def _close_connections(self) -> None:
        for connection in (self._commands, self._messages):
            if connection is not None:
                connection.close()
                self._traffic[0] += connection.bytes_sent
                self._traffic[1] += connection.bytes_received
        self._commands = self._messages = None

    def close(self) -> None:
        """Stop wanting answers and stop the engine if this client started it; returns at once."""
        self._close_connections()
        self._session = None
        self.source.stop()
        self._started = False

    # ----- inside -----

    def _cancellable(self, cancel: Cancel) -> bool:
        return bool(self._pending) if cancel.request_id is None else cancel.request_id in self._pending

    def _start(self) -> None:
        self.source.start()
        self._started = True
        if self._restarted:
            self.restarts += 1
            for request in self._state.values():  # before anything the user asks next
                self._internal_ids -= 1
                self._outgoing.appendleft((self._internal_ids, request))

    def _connect(self) -> bool:
        endpoint = self.source.endpoint()
        if endpoint is None:
            failure = self.source.failure()
            if failure is not None:
                self._lose(failure)
            return False
        headers = {"Authorization": f"Bearer {endpoint.token}", PROTOCOL_HEADER: str(PROTOCOL_VERSION)}
        self._commands = HttpConnection(endpoint.host, endpoint.port, headers)
        self._messages = HttpConnection(endpoint.host, endpoint.port, headers)
        self._commands.request("POST", "/v1/sessions", self._on_session)
        return True

    def _on_session(self, response: Response) -> None:
        self._session = str(_json_answer(response)["session"])

    def _send_requests(self) -> None:
        assert self._commands is not None
        if self._commands.busy or not self._outgoing:
            return
        batch = list(self._outgoing)
        self._outgoing.clear()
        pieces = encode(batch)
        self._commands.request(
            "POST", f"/v1/sessions/{self._session}/requests", _json_answer, pieces, content_type=FRAME_TYPE
        )

    def _ask_for_messages(self) -> None:
        assert self._messages is not None
        if not self._messages.busy:
            path = f"/v1/sessions/{self._session}/messages?wait={self.poll_wait_s:g}"
            self._messages.request("GET", path, self._on_messages)

    def _on_messages(self, response: Response) -> None:
        if response.status != 200:
            _json_answer(response)  # raises with the engine's reason
        messages = decode(response.body)
        if not isinstance(messages, list) or not all(isinstance(m, WorkerMessage) for m in messages):
            raise ProtocolError("The engine's messages are malformed.")
        for message in messages:
            if message.request_id < 0:  # a state request sent again after a restart
                if message.kind in (MessageKind.ERROR, MessageKind.OUT_OF_MEMORY):
                    logger.warning("Restoring the engine's state after a restart failed: %s", message.text)
                continue
            if message.kind.final:
                self._pending.discard(message.request_id)
            self._inbox.append(message)

    def _lose(self, reason: str) -> None:
        """The engine or the session is gone: answer everything still waiting, start over next time."""
        logger.warning("SAM engine lost: %s", reason)
        self._close_connections()
        self._session = None
        text = (
            f"The SAM engine stopped: {reason} Your segmentation is unchanged; "
            "the next action starts the engine again."
        )
        for request_id in sorted(self._pending):
            self._inbox.append(WorkerMessage(request_id, MessageKind.ERROR, text=text))
        self._pending.clear()
        self._outgoing.clear()
        self._started = False
        self._restarted = True
        self.source.stop()


class EngineError(ConnectionLost):
    """The engine answered with an error (wrong token, other protocol version, session lost)."""


def _json_answer(response: Response) -> dict[str, object]:
    try:
        value = json.loads(bytes(response.body) or b"{}")
    except ValueError:
        value = {}
    if response.status != 200:
        text = value.get("error") if isinstance(value, dict) else None
        raise EngineError(str(text or f"HTTP {response.status}"))
    if not isinstance(value, dict):
        raise EngineError("The engine's answer is malformed.")
    return value


def wait_for(client: EngineClient, done: Callable[[list[WorkerMessage]], bool], timeout_s: float) -> list[WorkerMessage]:
    """Poll ``client`` until ``done(messages so far)``; for scripts and the CLI, which may block."""
    import select

    messages: list[WorkerMessage] = []
    deadline = time.monotonic() + timeout_s
    while not done(messages):
        if time.monotonic() > deadline:
            raise TimeoutError(f"The SAM engine did not answer within {timeout_s:.0f} s.")
        watched = client.watched()
        readers = [fd for fd, _ in watched]
        writers = [fd for fd, write in watched if write]
        if readers:
            select.select(readers, writers, [], 0.05)
        else:
            time.sleep(0.02)
        messages.extend(client.poll())
    return messages
