"""The client of the SAM engine service: the same ``submit`` / ``cancel`` / ``poll`` as the in-process
``InferenceWorker``, over the HTTP protocol of ``SAMSegmentLib.service.http_server``, never blocking.

``poll`` (or ``pump``) moves bytes as far as the sockets allow and returns; the host calls it from
a timer and when its event loop sees one of ``watched()``'s sockets ready. Request ids are chosen
here, so a request is tracked before the engine has seen it; requests reach the engine in the
order they were submitted, batched when several are waiting.

When the engine dies (a crash, out of memory, killed) or cannot be reached, every request still
waiting gets a final ERROR saying so, and the next request starts over: the engine is started
again where this client started it (never for a server someone else runs), a new session
opened, and the last LoadModel and SetVolume sent again first, so the user's next click works
(its embeddings are computed again).

When the engine answers but no longer has the session (a server restarted, a replica scaled
away, the session expired), the client opens a new one at once, sends the last LoadModel and
SetVolume again, and then every waiting request that had no answer yet: the user sees nothing
but the time it takes. A request that had started answering (a propagation's slices) ends with
an ERROR instead, since running it again would repeat what was shown; so does one whose session
was lost twice (it may be what kills the server).

A refused token (401) or another protocol version (409) ends the waiting requests with one
clear message naming the server, and both versions.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable

from .answers import SESSION_LOST, EngineError, describe_problem, json_answer
from .codec import (
    FRAME_TYPE,
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    ProtocolError,
    decode,
    encode,
)
from .connection import ConnectionLostError, HttpConnection, Response, watched_sockets
from .endpoints import Endpoint, EndpointSource, FixedEndpoint
from .messages import MessageKind, WorkerMessage
from .requests import Cancel, LoadModel, Request, SetVolume

logger = logging.getLogger(__name__)

_POLL_WAIT_S = 10.0  # how long the engine may hold a message poll open
# Beyond the poll's wait, how long a request may see no byte move before the engine counts as gone
# (a server's network gone without closing anything). Every other request is answered at once.
_ANSWER_MARGIN_S = 30.0
_STATE_REQUESTS = (LoadModel, SetVolume)  # what a new session needs to continue where the last one was
_MAX_SESSION_LOSSES = 3  # sessions lost in a row, no request answered meanwhile: the server cannot keep one


class EngineClient:
    def __init__(self, source: EndpointSource, poll_wait_s: float = _POLL_WAIT_S) -> None:
        self.source = source
        self.poll_wait_s = poll_wait_s
        self._ids = 0
        self._internal_ids = 0  # negative ids: state requests sent again to a new session
        self._outgoing: deque[tuple[int, Request]] = deque()
        self._waiting: dict[int, Request] = {}  # submitted, final message not yet received
        self._answering: set[int] = set()  # of those, the ones that sent a message already
        self._sent_again: set[int] = set()  # sent again to a new session after one was lost
        self._inbox: list[WorkerMessage] = []
        self._state: dict[type, Request] = {}  # the last LoadModel and SetVolume sent
        self._endpoint: Endpoint | None = None
        self._session: str | None = None
        self._commands: HttpConnection | None = None
        self._messages: HttpConnection | None = None
        self._started = False
        self._restarted = False
        self._losses_in_a_row = 0
        self._ending = False  # end_session() asked the engine to close the session
        self._ended = False  # and it has
        self.restarts = 0  # how often the engine was started again or the session rebuilt
        self._traffic = [0, 0]  # bytes sent and received on connections already closed
        self._reconnects = 0  # on connections already closed

    # ----- the worker's interface -----

    def submit(self, request: Request) -> int:
        self._ids += 1
        request_id = self._ids
        if isinstance(request, Cancel) and not self._cancellable(request):
            self._inbox.append(WorkerMessage(request_id, MessageKind.RESULT, ()))
            return request_id
        self._waiting[request_id] = request
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

    @property
    def idle(self) -> bool:
        """Every request submitted has its final message."""
        return not self._waiting

    # ----- for the host's event loop -----

    def watched(self) -> list[tuple[int, bool]]:
        """The sockets to watch: (file descriptor, also for writing); call ``pump`` when one is ready."""
        return watched_sockets(self._commands, self._messages)

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
        except EngineError as error:
            if error.code == SESSION_LOST and not self._ending and self._losses_in_a_row < _MAX_SESSION_LOSSES:
                self._rebuild_session(str(error))
            else:
                self._lose(self._problem(error))
        except (ConnectionLostError, ProtocolError) as error:
            self._lose(self._problem(error))

    @property
    def connected(self) -> bool:
        return self._session is not None

    @property
    def session_id(self) -> str | None:
        """The engine's id of this client's current session (a new one after each restart)."""
        return self._session

    @property
    def reconnects(self) -> int:
        """How often a connection closed by the server while idle was opened again (no error)."""
        return self._reconnects + sum(c.reopened for c in (self._commands, self._messages) if c is not None)

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
                self._reconnects += connection.reopened
        self._commands = self._messages = None

    def end_session(self) -> None:
        """Ask the engine to close this client's session, freeing its model and embeddings (a
        server's memory); ``session_ended`` turns True once it has answered, or cannot."""
        if self._session is None or self._commands is None or self._ending:
            return
        self._ending = True
        self._commands.request("DELETE", self._path(f"sessions/{self._session}"), self._on_session_ended)
        self.pump()

    @property
    def session_ended(self) -> bool:
        return self._ended or self._session is None

    def _on_session_ended(self, response: Response) -> None:
        self._ended = True

    def close(self) -> None:
        """Stop wanting answers and stop the engine if this client started it; returns at once.
        A server is asked to close the session (freeing its model and embeddings) when the
        request can go out now; otherwise the server closes it once it has been idle long enough."""
        if self._session is not None and self._commands is not None and not self._commands.busy and not self._ending:
            self._commands.request("DELETE", self._path(f"sessions/{self._session}"), lambda response: None)
            with contextlib.suppress(ConnectionLostError):
                self._commands.pump()  # a few hundred bytes: the socket takes them at once
        self._close_connections()
        self._session = None
        self.source.stop()
        self._started = False

    # ----- inside -----

    def _cancellable(self, cancel: Cancel) -> bool:
        return bool(self._waiting) if cancel.request_id is None else cancel.request_id in self._waiting

    @property
    def _remote(self) -> bool:
        """The engine is a server someone else runs: this client never starts one."""
        return isinstance(self.source, FixedEndpoint)

    def _path(self, route: str) -> str:
        prefix = self._endpoint.path if self._endpoint is not None else ""
        return f"{prefix}/v1/{route}"

    def _start(self) -> None:
        self.source.start()
        self._started = True
        if self._restarted:
            self.restarts += 1
            self._send_state_first()

    def _send_state_first(self, unless: Iterable[Request] = ()) -> None:
        """Queue the last LoadModel and SetVolume before anything else (but not those in ``unless``,
        queued already in their place)."""
        queued = {id(request) for request in unless}
        for request in reversed(list(self._state.values())):
            if id(request) not in queued:
                self._internal_ids -= 1
                self._outgoing.appendleft((self._internal_ids, request))

    def _connect(self) -> bool:
        endpoint = self.source.endpoint()
        if endpoint is None:
            failure = self.source.failure()
            if failure is not None:
                self._lose(self._problem(ConnectionLostError(failure)))
            return False
        self._endpoint = endpoint
        headers = {"Authorization": f"Bearer {endpoint.token}", PROTOCOL_HEADER: str(PROTOCOL_VERSION)}
        timeout = self.poll_wait_s + _ANSWER_MARGIN_S
        self._commands = HttpConnection(endpoint.host, endpoint.port, headers, answer_timeout_s=timeout)
        self._messages = HttpConnection(endpoint.host, endpoint.port, headers, answer_timeout_s=timeout)
        self._commands.request("POST", self._path("sessions"), self._on_session)
        return True

    def _on_session(self, response: Response) -> None:
        self._session = str(json_answer(response)["session"])

    def _send_requests(self) -> None:
        assert self._commands is not None
        if self._commands.busy or not self._outgoing:
            return
        batch = list(self._outgoing)
        self._outgoing.clear()
        pieces = encode(batch)
        self._commands.request(
            "POST", self._path(f"sessions/{self._session}/requests"), json_answer, pieces, content_type=FRAME_TYPE
        )

    def _ask_for_messages(self) -> None:
        assert self._messages is not None
        if not self._messages.busy:
            path = self._path(f"sessions/{self._session}/messages?wait={self.poll_wait_s:g}")
            self._messages.request("GET", path, self._on_messages)

    def _on_messages(self, response: Response) -> None:
        if response.status != 200:
            json_answer(response)  # raises with the engine's reason
        messages = decode(response.body)
        if not isinstance(messages, list) or not all(isinstance(m, WorkerMessage) for m in messages):
            raise ProtocolError("The engine's messages are malformed.")
        if messages:
            self._losses_in_a_row = 0  # this session works
        for message in messages:
            if message.request_id < 0:  # a state request sent again to a new session
                if message.kind in (MessageKind.ERROR, MessageKind.OUT_OF_MEMORY):
                    logger.warning("Restoring the engine's state failed: %s", message.text)
                continue
            if message.kind.final:
                self._waiting.pop(message.request_id, None)
                self._answering.discard(message.request_id)
                self._sent_again.discard(message.request_id)
            else:
                self._answering.add(message.request_id)
            self._inbox.append(message)

    def _engine_name(self) -> str:
        if self._remote:
            address = self._endpoint or self.source.endpoint()
            return f"The SAM server at {address.url}" if address is not None else "The SAM server"
        return "The SAM engine"

    def _problem(self, error: Exception) -> str:
        """What the user reads when ``error`` ended the waiting requests."""
        if not self._remote and not isinstance(error, EngineError):
            reason = self.source.failure() or f"The connection to the SAM engine broke: {error}"
            return (
                f"The SAM engine stopped: {reason} Your segmentation is unchanged; "
                "the next action starts the engine again."
            )
        retry = "the next action tries the server again." if self._remote else "the next action starts it again."
        return f"{describe_problem(self._engine_name(), error)} Your segmentation is unchanged; {retry}"

    def _lose(self, text: str) -> None:
        """The engine is gone or refused us: answer everything still waiting, start over next time."""
        logger.warning("SAM engine lost: %s", text)
        self._close_connections()
        self._session = None
        for request_id in sorted(self._waiting):
            self._inbox.append(WorkerMessage(request_id, MessageKind.ERROR, text=text))
        self._waiting.clear()
        self._answering.clear()
        self._sent_again.clear()
        self._outgoing.clear()
        self._started = False
        self._restarted = True
        self.source.stop()

    def _rebuild_session(self, reason: str) -> None:
        """The engine answers but has lost our session: open a new one now and send again what it
        needs and what had no answer yet."""
        logger.warning("The SAM engine lost the session (%s): opening a new one.", reason)
        self._close_connections()
        self._session = None
        self._losses_in_a_row += 1
        self.restarts += 1
        text = (
            f"{self._engine_name()} lost this session (it restarted, or the session expired) while working on "
            "this. Your segmentation is unchanged; run it again."
        )
        again = []
        for request_id in sorted(self._waiting):
            if request_id in self._answering or request_id in self._sent_again:
                del self._waiting[request_id]
                self._inbox.append(WorkerMessage(request_id, MessageKind.ERROR, text=text))
            else:
                again.append((request_id, self._waiting[request_id]))
        self._answering.clear()
        self._sent_again = {request_id for request_id, _ in again}
        self._outgoing = deque(again)
        self._send_state_first(unless=[request for _, request in again])


def wait_for(
    client: EngineClient, done: Callable[[list[WorkerMessage]], bool], timeout_s: float
) -> list[WorkerMessage]:
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
