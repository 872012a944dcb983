"""The engine service over HTTP/1.1 in one process: what ``samsegment serve`` runs, for Slicer on
the same computer (loopback, a fresh token) or for a small department server.

The protocol's rules (routes, tokens, sizes, answers) live in ``routes``; this module only moves
bytes, one thread per connection.
"""

from __future__ import annotations

import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .engine import EngineService
from .routes import DEFAULT_MAX_UPLOAD_BYTES, RefusedError, Reply, RouteKind, Tokens, check_request, dispatch

logger = logging.getLogger(__name__)


class HttpEngineServer(ThreadingHTTPServer):
    daemon_threads = True  # a client that never reads its long poll cannot keep the service alive

    def __init__(
        self,
        address: tuple[str, int],
        engine: EngineService,
        tokens: Tokens,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    ) -> None:
        self.engine = engine
        self.tokens = tokens
        self.max_upload_bytes = max_upload_bytes
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="SAMSegment engine service", daemon=True)
        thread.start()
        return thread


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection carries a client's requests
    # Headers and body go out in separate writes: with Nagle's algorithm the body would wait for
    # the client's delayed acknowledgement of the headers (up to 40 ms on Linux) on every answer.
    disable_nagle_algorithm = True
    server: HttpEngineServer

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def _dispatch(self, method: str) -> None:
        server = self.server
        try:
            try:
                route, length = check_request(method, self.path, self.headers, server.tokens, server.max_upload_bytes)
            except RefusedError as refused:
                if refused.reply.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
                    self.close_connection = True  # the body is not read: the connection cannot be reused
                else:
                    self._drain_body()
                self._send(refused.reply)
                return
            body = self._read_body(length) if route.kind is RouteKind.REQUESTS else self._drain_body(length)
            self._send(dispatch(server.engine, route, body))
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away; its session stays for its next call

    def _read_body(self, length: int) -> bytearray:
        body = bytearray(length)
        view, received = memoryview(body), 0
        while received < length:
            count = self.rfile.readinto(view[received:])
            if not count:
                raise ConnectionError("The client went away during its upload.")
            received += count
        return body

    def _drain_body(self, length: int | None = None) -> bytes:
        if length is None:
            try:
                length = max(0, int(self.headers.get("Content-Length", "0")))
            except ValueError:
                self.close_connection = True
                return b""
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                raise ConnectionError("The client went away during its upload.")
            length -= len(chunk)
        return b""

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)
