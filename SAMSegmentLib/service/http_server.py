"""The engine service over HTTP/1.1: what ``samsegment serve`` runs, for Slicer on the same
computer (loopback, a fresh token) or for a department's server.

Routes (every one needs ``Authorization: Bearer <token>`` and the header ``X-SAMSegment-Protocol``
naming the client's protocol version; JSON errors are ``{"error": text, "code": code}``):

- ``GET /v1/health``: JSON with the protocol version, the engine version and the models.
- ``POST /v1/sessions``: opens a session; JSON ``{"session": id}``.
- ``DELETE /v1/sessions/<id>``: closes it.
- ``POST /v1/sessions/<id>/requests``: a frame holding a list of ``(request id, request)``
  pairs, the ids chosen by the client; answered 204 once the worker has them in order.
- ``GET /v1/sessions/<id>/messages?wait=<s>``: a frame holding the list of messages since the
  last such call, held open up to ``wait`` seconds until there is one (a long poll).

A session the service does not know (expired, or the engine restarted) is 404 with the code
``session_lost``; a different protocol version is 409 with the code ``protocol_mismatch``.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import SAMSegmentError
from ..protocol import PROTOCOL_VERSION, ProtocolError, Request, decode, encode
from ..protocol.codec import FRAME_TYPE, PROTOCOL_HEADER, frame_length
from ..protocol.requests import REQUEST_TYPES
from .engine import EngineService, SessionLostError

logger = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_BYTES = 4 << 30  # a 1000-slice 512 x 512 CT as int16 is 0.5 GB


class HttpEngineServer(ThreadingHTTPServer):
    daemon_threads = True  # a client that never reads its long poll cannot keep the service alive

    def __init__(
        self,
        address: tuple[str, int],
        engine: EngineService,
        token: str,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    ) -> None:
        if not token:
            raise SAMSegmentError("The SAM engine service needs a token.")
        self.engine = engine
        self.token = token
        self.max_upload_bytes = max_upload_bytes
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="SAMSegment engine service", daemon=True)
        thread.start()
        return thread


class _Reply(Exception):
    """Ends a request with an HTTP error."""

    def __init__(self, status: HTTPStatus, code: str, text: str) -> None:
        super().__init__(text)
        self.status, self.code, self.text = status, code, text


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection carries a client's requests
    # Headers and body go out in separate writes: with Nagle's algorithm the body would wait for
    # the client's delayed acknowledgement of the headers (up to 40 ms on Linux) on every answer.
    disable_nagle_algorithm = True
    server: HttpEngineServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        logger.debug("%s " + format, self.address_string(), *args)

    def _dispatch(self, method: str) -> None:
        try:
            self._check_token()
            self._check_protocol()
            url = urlsplit(self.path)
            parts = [part for part in url.path.split("/") if part]
            if parts[:1] != ["v1"]:
                raise _Reply(HTTPStatus.NOT_FOUND, "not_found", f"No such route: {url.path}")
            self._route(method, parts[1:], parse_qs(url.query))
        except _Reply as reply:
            self._json(reply.status, {"error": reply.text, "code": reply.code})
        except SessionLostError as error:
            self._json(HTTPStatus.NOT_FOUND, {"error": str(error), "code": "session_lost"})
        except ProtocolError as error:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(error), "code": "bad_request"})
        except SAMSegmentError as error:
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(error), "code": "unavailable"})
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as error:  # noqa: BLE001 - answered, logged; the service keeps serving
            logger.exception("The engine service failed on %s %s", method, self.path)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(error).__name__}: {error}", "code": "bug"})

    def _route(self, method: str, parts: list[str], query: dict[str, list[str]]) -> None:
        engine = self.server.engine
        if method == "GET" and parts == ["health"]:
            self._json(HTTPStatus.OK, engine.health())
        elif method == "POST" and parts == ["sessions"]:
            self._drain_body()
            self._json(HTTPStatus.OK, {"session": engine.open_session()})
        elif method == "DELETE" and len(parts) == 2 and parts[0] == "sessions":
            engine.close_session(parts[1])
            self._json(HTTPStatus.OK, {})
        elif method == "POST" and len(parts) == 3 and parts[0] == "sessions" and parts[2] == "requests":
            session = engine.session(parts[1])
            session.submit(_request_batch(decode(self._read_body())))
            self._json(HTTPStatus.OK, {})
        elif method == "GET" and len(parts) == 3 and parts[0] == "sessions" and parts[2] == "messages":
            session = engine.session(parts[1])
            try:
                wait = min(float(query.get("wait", ["0"])[0]), engine.settings.max_wait_s)
            except ValueError:
                raise _Reply(HTTPStatus.BAD_REQUEST, "bad_request", "wait must be a number of seconds.") from None
            self._frame(session.messages(max(0.0, wait)))
        else:
            raise _Reply(HTTPStatus.NOT_FOUND, "not_found", f"No such route: {method} {self.path}")

    def _check_token(self) -> None:
        supplied = self.headers.get("Authorization", "")
        expected = f"Bearer {self.server.token}"
        if not hmac.compare_digest(supplied.encode(), expected.encode()):
            self._drain_body()
            raise _Reply(HTTPStatus.UNAUTHORIZED, "unauthorized", "A valid engine token is needed.")

    def _check_protocol(self) -> None:
        theirs = self.headers.get(PROTOCOL_HEADER, "")
        if theirs != str(PROTOCOL_VERSION):
            self._drain_body()
            raise _Reply(
                HTTPStatus.CONFLICT,
                "protocol_mismatch",
                f"This SAM engine speaks protocol version {PROTOCOL_VERSION}; the client speaks "
                f"version {theirs or 'unknown'}. Install the same SAMSegment version on both sides.",
            )

    def _content_length(self) -> int:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise _Reply(HTTPStatus.BAD_REQUEST, "bad_request", "Content-Length is not a number.") from None
        if length < 0:
            raise _Reply(HTTPStatus.BAD_REQUEST, "bad_request", "Content-Length is negative.")
        if length > self.server.max_upload_bytes:
            self.close_connection = True  # the body is not read: the connection cannot be reused
            raise _Reply(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "too_large",
                f"The request has {length} bytes; this engine takes at most {self.server.max_upload_bytes}.",
            )
        return length

    def _read_body(self) -> bytearray:
        length = self._content_length()
        body = bytearray(length)
        view, received = memoryview(body), 0
        while received < length:
            count = self.rfile.readinto(view[received:])
            if not count:
                raise ConnectionError("The client went away during its upload.")
            received += count
        return body

    def _drain_body(self) -> None:
        length = self._content_length()
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                raise ConnectionError("The client went away during its upload.")
            length -= len(chunk)

    def _json(self, status: HTTPStatus, value: dict[str, Any]) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _frame(self, value: Any) -> None:
        pieces = encode(value)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", FRAME_TYPE)
        self.send_header("Content-Length", str(frame_length(pieces)))
        self.end_headers()
        for piece in pieces:
            self.wfile.write(piece)


def _request_batch(value: Any) -> list[tuple[int, Request]]:
    """The (id, request) pairs of a request frame, each checked to be one."""
    if not isinstance(value, list):
        raise ProtocolError("A request frame must hold a list of (id, request) pairs.")
    batch = []
    for item in value:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], int)):
            raise ProtocolError("A request frame must hold a list of (id, request) pairs.")
        if not isinstance(item[1], REQUEST_TYPES):
            raise ProtocolError(f"A {type(item[1]).__name__} is not a request.")
        batch.append((item[0], item[1]))
    return batch
