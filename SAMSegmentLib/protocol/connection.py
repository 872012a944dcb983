"""A keep-alive HTTP/1.1 connection that never blocks: for a GUI thread that holds Python's GIL.

Slicer never releases the GIL while its Qt event loop runs, so the client of the engine may not
wait on a socket, nor work on a Python thread (only a server's name is looked up on one: the
lookup runs in C without the GIL). Instead ``pump`` does what the socket allows at
once (connect, send, receive, parse) and returns; the host calls it when Qt's event loop sees
the socket ready (``fileno``, ``wants_write``) and from a timer. Each call does a bounded amount
of work (``_PUMP_BYTES``), so a 150 MB upload is spread over many short calls.

Requests on one connection are answered in order; a connection sends its next request when the
previous one is answered.

Servers and proxies close keep-alive connections that sit idle (nginx after 75 s, Ray Serve's
proxy after 90 s by default): such a close is no error. The connection is opened again for the
next request, and a request is sent again on a fresh connection only when that cannot do it
twice (RFC 9112, section 9.3.1): it was never sent whole, or it is idempotent (GET, HEAD, DELETE)
and no byte of its answer had arrived. Anything else that breaks the connection raises
``ConnectionLostError``.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

_PUMP_BYTES = 8 << 20  # at most this much sent and received per pump: about 5-10 ms on loopback
_MAX_HEADER_BYTES = 64 << 10
_IDEMPOTENT = ("GET", "HEAD", "DELETE")  # RFC 9110, section 9.2.2 (those this protocol uses)
_MAX_REOPENS = 3  # a server that closes every fresh connection before answering is not there


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytearray


ResponseHandler = Callable[[Response], object]  # what it returns is not used


@dataclass
class _Pending:
    head: bytes
    body: Sequence[bytes | memoryview]
    on_response: ResponseHandler
    idempotent: bool
    sent: bool = False
    retried: bool = False  # sent again once on a fresh connection
    pieces: deque[memoryview] = field(default_factory=deque)


class ConnectionLostError(ConnectionError):
    """The connection failed or the server closed it."""


class HttpConnection:
    def __init__(
        self,
        host: str,
        port: int,
        headers: dict[str, str],
        connect_timeout_s: float = 10.0,
        answer_timeout_s: float | None = None,
    ) -> None:
        """``answer_timeout_s``: a request sent that sees no byte move either way for this long has
        lost its server (a network gone without a word); None waits forever."""
        self.host, self.port = host, port
        self._answer_timeout_s = answer_timeout_s
        self._last_progress = 0.0
        self._headers = headers
        self._socket: socket.socket | None = None
        self._connected = False
        self._connect_deadline = 0.0
        self._connect_timeout_s = connect_timeout_s
        self._queue: deque[_Pending] = deque()
        self._inbox = bytearray()
        self._response: Response | None = None  # headers parsed, body still arriving
        self._expected = 0
        self.error: ConnectionLostError | None = None  # set once; the connection is then useless
        self.bytes_sent = 0
        self.bytes_received = 0
        self._resolved: tuple[int, tuple] | None = None  # see _address
        self._lookup: _Lookup | None = None
        self.reopened = 0  # how often it was opened again after the server closed it
        self._reopens_unanswered = 0  # opened again since the last answer

    # ----- what the host's event loop watches -----

    def fileno(self) -> int | None:
        return self._socket.fileno() if self._socket is not None and self.error is None else None

    @property
    def wants_write(self) -> bool:
        """True while connecting or sending: watch the socket for writability too."""
        if self.error is not None or self._socket is None:
            return False
        return not self._connected or any(p.pieces for p in self._queue if p.sent)

    @property
    def busy(self) -> bool:
        """A request is queued or waiting for its answer."""
        return bool(self._queue)

    # ----- use -----

    def request(
        self,
        method: str,
        path: str,
        on_response: ResponseHandler,
        body: Sequence[bytes | memoryview] = (),
        content_type: str = "application/octet-stream",
    ) -> None:
        """Queue a request; ``on_response`` is called from ``pump`` with its answer."""
        length = sum(memoryview(piece).nbytes for piece in body)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {length}"]
        if length:
            lines.append(f"Content-Type: {content_type}")
        lines += [f"{name}: {value}" for name, value in self._headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self._queue.append(_Pending(head, body, on_response, idempotent=method in _IDEMPOTENT))

    def pump(self) -> None:
        """Make what progress the socket allows now; raises ConnectionLostError (also later calls).
        Connects when a request is waiting, not before."""
        if self.error is not None:
            raise self.error
        try:
            if self._socket is None and not self._queue:
                return
            if not self._connect():
                return
            self._receive()  # first: a close by the server is seen before a request goes out on it
            if self._socket is None and (not self._queue or not self._connect()):
                return
            self._send()
            self._receive()
            self._check_progress()
        except ConnectionLostError as error:
            self._fail(error)
            raise
        except OSError as error:
            lost = ConnectionLostError(f"{error.strerror or error}")
            self._fail(lost)
            raise lost from error

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self.error is None:
            self.error = ConnectionLostError("The connection was closed.")

    # ----- inside -----

    def _fail(self, error: ConnectionLostError) -> None:
        self.error = error
        self._drop_socket()

    def _drop_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._connected = False

    def _closed_by_server(self) -> None:
        """The server closed the connection: open it again for what is waiting, if that is safe."""
        head = self._queue[0] if self._queue else None
        if head is not None and head.sent:
            answer_started = self._response is not None or bool(self._inbox)
            incomplete = bool(head.pieces)  # a server cannot have taken a request it did not get whole
            if answer_started or head.retried or not (head.idempotent or incomplete):
                raise ConnectionLostError("The server closed the connection before answering.")
            head.sent, head.retried = False, True
        if head is not None:  # opened again at once, for this request
            if self._reopens_unanswered >= _MAX_REOPENS:
                raise ConnectionLostError("The server closes every connection before answering.")
            self._reopens_unanswered += 1
        self._drop_socket()
        self._inbox.clear()
        self.reopened += 1

    def _check_progress(self) -> None:
        head = self._queue[0] if self._queue else None
        if head is None or not head.sent or self._answer_timeout_s is None:
            return
        silent = time.monotonic() - self._last_progress
        if silent > self._answer_timeout_s:
            raise ConnectionLostError(f"No answer from {self.host}:{self.port} for {silent:.0f} s.")

    def _address(self) -> tuple[int, tuple] | None:
        """(address family, socket address) of the server; None while a host name is looked up.
        The lookup runs on a thread: it can take seconds (a slow name server) and connecting never
        waits. The thread needs the GIL only to hand its answer over."""
        if self._resolved is None and self._lookup is None:
            try:
                family = socket.AF_INET6 if ipaddress.ip_address(self.host).version == 6 else socket.AF_INET
                self._resolved = (family, (self.host, self.port))
            except ValueError:  # a name
                self._lookup = _Lookup(self.host, self.port)
                self._connect_deadline = time.monotonic() + self._connect_timeout_s
        if self._resolved is None and self._lookup is not None:
            if self._lookup.error is not None:
                raise ConnectionLostError(f"Cannot find the server {self.host}: {self._lookup.error}.")
            self._resolved = self._lookup.address
            if self._resolved is None and time.monotonic() > self._connect_deadline:
                raise ConnectionLostError(f"Looking up {self.host} took over {self._connect_timeout_s:.0f} s.")
        return self._resolved

    def _connect(self) -> bool:
        if self._connected:
            return True
        if self._socket is None:
            resolved = self._address()
            if resolved is None:
                return False
            family, address = resolved
            self._socket = socket.socket(family, socket.SOCK_STREAM)
            self._socket.setblocking(False)
            self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._connect_deadline = time.monotonic() + self._connect_timeout_s
            code = self._socket.connect_ex(address)
        else:
            code = self._socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code == 0:  # a second connect_ex tells whether the handshake finished
                assert self._resolved is not None, "a socket exists only once its address is resolved"
                code = self._socket.connect_ex(self._resolved[1])
        if code in (0, errno.EISCONN):
            self._connected = True
            return True
        if code in (errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK, getattr(errno, "WSAEWOULDBLOCK", -1)):
            if time.monotonic() > self._connect_deadline:
                raise ConnectionLostError(
                    f"No answer from {self.host}:{self.port} within {self._connect_timeout_s:.0f} s."
                )
            return False
        raise ConnectionLostError(f"Cannot connect to {self.host}:{self.port}: {os.strerror(code).lower()}.")

    def _send(self) -> None:
        assert self._socket is not None
        if not self._queue:
            return
        pending = self._queue[0]
        if not pending.sent:  # only the head of the queue is on the wire (no pipelining)
            pending.sent = True
            self._last_progress = time.monotonic()
            pending.pieces = deque(memoryview(piece).cast("B") for piece in (pending.head, *pending.body))
        budget = _PUMP_BYTES
        while pending.pieces and budget > 0:
            piece = pending.pieces[0]
            try:
                count = self._socket.send(piece[: min(len(piece), budget)])
            except (BlockingIOError, InterruptedError):
                return
            except (BrokenPipeError, ConnectionResetError):
                self._closed_by_server()
                return
            budget -= count
            self.bytes_sent += count
            self._last_progress = time.monotonic()
            if count == len(piece):
                pending.pieces.popleft()
            else:
                pending.pieces[0] = piece[count:]

    def _receive(self) -> None:
        budget = _PUMP_BYTES
        while budget > 0 and self._socket is not None:  # an answer's handler may close the connection
            try:
                chunk = self._socket.recv(min(budget, 1 << 20))
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionResetError:  # a proxy may reset an idle connection instead of closing it
                chunk = b""
            if not chunk:
                self._closed_by_server()
                return
            budget -= len(chunk)
            self.bytes_received += len(chunk)
            self._last_progress = time.monotonic()
            self._inbox += chunk
            self._parse()
        self._parse()

    def _parse(self) -> None:
        while True:
            if self._response is None:
                end = self._inbox.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._inbox) > _MAX_HEADER_BYTES:
                        raise ConnectionLostError("The engine's answer has an oversized header.")
                    return
                self._response, self._expected = _parse_head(bytes(self._inbox[:end]))
                del self._inbox[: end + 4]
            if len(self._inbox) < self._expected:
                return
            response, self._response = self._response, None
            response.body = self._inbox[: self._expected]
            del self._inbox[: self._expected]
            if not self._queue or not self._queue[0].sent:
                raise ConnectionLostError("The engine answered a request that was never sent.")
            pending = self._queue.popleft()
            self._reopens_unanswered = 0
            pending.on_response(response)
            if self._socket is None:
                return
            if self._queue:
                self._send()


class _Lookup:
    """A host name's address, looked up on a daemon thread (getaddrinfo releases the GIL)."""

    def __init__(self, host: str, port: int) -> None:
        self.address: tuple[int, tuple] | None = None
        self.error: str | None = None
        threading.Thread(target=self._run, args=(host, port), name=f"lookup {host}", daemon=True).start()

    def _run(self, host: str, port: int) -> None:
        try:
            family, _type, _proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        except OSError as error:
            self.error = str(error.strerror or error)
            return
        self.address = (family, address)


def _parse_head(head: bytes) -> tuple[Response, int]:
    lines = head.decode("latin-1").split("\r\n")
    try:
        _version, status, *_reason = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        return Response(int(status), headers, bytearray()), length
    except ValueError:
        raise ConnectionLostError(f"The engine's answer is not HTTP: {lines[0][:80]!r}") from None


def watched_sockets(*connections: HttpConnection | None) -> list[tuple[int, bool]]:
    watched = []
    for connection in connections:
        if connection is not None and (fd := connection.fileno()) is not None:
            watched.append((fd, connection.wants_write))
    return watched
