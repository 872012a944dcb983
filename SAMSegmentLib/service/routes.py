"""The engine service's HTTP rules, free of any transport: who may ask (tokens), what a request
may be (route, protocol version, size), and what the engine answers to it.

The threaded server (``http_server``, what ``samsegment serve`` runs) and the Ray Serve
deployment (``ray_server``, ``samsegment serve --ray``) both check a request with
``check_request`` before reading its body, then answer it with ``dispatch`` on an
``EngineService``; so both speak exactly the same protocol.

Routes (every one needs ``Authorization: Bearer <token>`` and the header ``X-SAMSegment-Protocol``
naming the client's protocol version; JSON errors are ``{"error": text, "code": code}``):

- ``GET /v1/health``: JSON with the protocol version, the engine version and the models.
- ``POST /v1/sessions``: opens a session; JSON ``{"session": id}``.
- ``DELETE /v1/sessions/<id>``: closes it.
- ``POST /v1/sessions/<id>/requests``: a frame holding a list of ``(request id, request)``
  pairs, the ids chosen by the client; answered once the worker has them in order.
- ``GET /v1/sessions/<id>/messages?wait=<s>``: a frame holding the list of messages since the
  last such call, held open up to ``wait`` seconds until there is one (a long poll).

The checks run in this order, each before any work: token (401), protocol version (409), route
(404), size (413). A session the service does not hold (expired, its replica gone, or opened
with another token) is 404 with the code ``session_lost``: the same answer whoever asks, so a
token learns nothing about other tokens' sessions.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from ..errors import SAMSegmentError
from ..protocol import PROTOCOL_VERSION, ProtocolError, Request, decode, encode
from ..protocol.answers import PROTOCOL_MISMATCH, SESSION_LOST
from ..protocol.codec import FRAME_TYPE, PROTOCOL_HEADER
from ..protocol.requests import REQUEST_TYPES
from .engine import EngineService, SessionLostError
from .launcher import TOKEN_ENVIRONMENT

logger = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_BYTES = 4 << 30  # a 1000-slice 512 x 512 CT as int16 is 0.5 GB
_OWNER_DIGITS = 16  # of a token's SHA-256: names its sessions' owner without keeping the token


class Tokens:
    """The bearer tokens a service accepts; each one owns the sessions opened with it."""

    def __init__(self, tokens: Iterable[str]) -> None:
        self._tokens = [token for token in (t.strip() for t in tokens) if token]
        if not self._tokens:
            raise SAMSegmentError("The SAM engine service needs at least one token.")

    @classmethod
    def from_file(cls, path: Path) -> Tokens:
        """One token per line; blank lines and lines starting with ``#`` are skipped."""
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as error:
            raise SAMSegmentError(f"Cannot read the token file {path}: {error.strerror}") from error
        tokens = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
        if not tokens:
            raise SAMSegmentError(f"The token file {path} holds no token.")
        return cls(tokens)

    @classmethod
    def configured(cls, token_file: Path | None) -> Tokens | None:
        """The tokens of ``token_file`` if given, else of $SAMSEGMENT_SERVER_TOKEN; None if neither."""
        if token_file is not None:
            return cls.from_file(token_file)
        token = os.environ.get(TOKEN_ENVIRONMENT, "").strip()
        return cls([token]) if token else None

    def first(self) -> str:
        """The first token: what a client on the server itself uses (the load test)."""
        return self._tokens[0]

    def owner(self, authorization: str) -> str | None:
        """Who an ``Authorization`` header speaks for (a digest of its token), None if nobody."""
        scheme, _, supplied = authorization.partition(" ")
        matched = None
        for token in self._tokens:  # every one compared, in constant time: no timing hints
            if hmac.compare_digest(supplied.encode(), token.encode()) and scheme == "Bearer":
                matched = token
        return hashlib.sha256(matched.encode()).hexdigest()[:_OWNER_DIGITS] if matched else None


class RouteKind(enum.Enum):
    HEALTH = "health"
    OPEN = "open"
    CLOSE = "close"
    REQUESTS = "requests"
    MESSAGES = "messages"


@dataclass(frozen=True)
class Route:
    kind: RouteKind
    session: str = ""
    wait_s: float = 0.0
    owner: str = ""  # filled in by check_request


@dataclass
class Reply:
    """An answer: ``body`` is JSON for errors and small answers, a frame for messages."""

    status: int
    body: bytes = b"{}"
    content_type: str = "application/json"
    code: str = ""  # an error's code, as in its body

    @classmethod
    def json(cls, status: int, value: dict[str, Any]) -> Reply:
        return cls(int(status), json.dumps(value).encode())

    @classmethod
    def error(cls, status: HTTPStatus, code: str, text: str) -> Reply:
        reply = cls.json(status, {"error": text, "code": code})
        reply.code = code
        return reply

    @classmethod
    def frame(cls, value: Any) -> Reply:
        return cls(HTTPStatus.OK, b"".join(encode(value)), FRAME_TYPE)


class RefusedError(Exception):
    """A request answered before any work (its ``reply`` says why)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.body.decode())
        self.reply = reply


def refusal(status: HTTPStatus, code: str, text: str) -> RefusedError:
    return RefusedError(Reply.error(status, code, text))


class HeaderLookup(Protocol):
    """Request headers looked up by name, case-insensitively (http.server's ``Message`` and
    starlette's ``Headers`` both are)."""

    def get(self, name: str, default: str, /) -> str | None: ...


def check_request(
    method: str, target: str, headers: HeaderLookup, tokens: Tokens, max_upload_bytes: int
) -> tuple[Route, int]:
    """The route and body length of a request, or the Reply refusing it, before its body is read.

    ``headers`` must look names up case-insensitively (http.server's and starlette's do)."""
    owner = tokens.owner(headers.get("Authorization", "") or "")
    if owner is None:
        raise refusal(HTTPStatus.UNAUTHORIZED, "unauthorized", "A valid engine token is needed.")
    theirs = headers.get(PROTOCOL_HEADER, "") or ""
    if theirs != str(PROTOCOL_VERSION):
        raise refusal(
            HTTPStatus.CONFLICT,
            PROTOCOL_MISMATCH,
            f"This SAM engine speaks protocol version {PROTOCOL_VERSION}; the client speaks "
            f"version {theirs or 'unknown'}. Install the same SAMSegment version on both sides.",
        )
    route = _route(method, target)
    try:
        length = int(headers.get("Content-Length", "0") or "0")
    except ValueError:
        raise refusal(HTTPStatus.BAD_REQUEST, "bad_request", "Content-Length is not a number.") from None
    if length < 0:
        raise refusal(HTTPStatus.BAD_REQUEST, "bad_request", "Content-Length is negative.")
    if length > max_upload_bytes:
        raise too_large(length, max_upload_bytes)
    return Route(route.kind, route.session, route.wait_s, owner), length


def too_large(length: int, max_upload_bytes: int) -> RefusedError:
    return refusal(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        "too_large",
        f"The request has {length} bytes; this engine takes at most {max_upload_bytes}.",
    )


def _route(method: str, target: str) -> Route:
    url = urlsplit(target)
    parts = [part for part in url.path.split("/") if part]
    if parts[:1] == ["v1"]:
        parts = parts[1:]
        if method == "GET" and parts == ["health"]:
            return Route(RouteKind.HEALTH)
        if method == "POST" and parts == ["sessions"]:
            return Route(RouteKind.OPEN)
        if method == "DELETE" and len(parts) == 2 and parts[0] == "sessions":
            return Route(RouteKind.CLOSE, parts[1])
        if method == "POST" and len(parts) == 3 and parts[0] == "sessions" and parts[2] == "requests":
            return Route(RouteKind.REQUESTS, parts[1])
        if method == "GET" and len(parts) == 3 and parts[0] == "sessions" and parts[2] == "messages":
            try:
                wait = float(parse_qs(url.query).get("wait", ["0"])[0])
            except ValueError:
                raise refusal(HTTPStatus.BAD_REQUEST, "bad_request", "wait must be a number of seconds.") from None
            return Route(RouteKind.MESSAGES, parts[1], max(0.0, wait))
    raise refusal(HTTPStatus.NOT_FOUND, "not_found", f"No such route: {method} {url.path}")


def dispatch(engine: EngineService, route: Route, body: bytes | bytearray = b"") -> Reply:
    """What ``engine`` answers to a checked request; never raises (every failure is an answer)."""
    try:
        if route.kind is RouteKind.HEALTH:
            return Reply.json(HTTPStatus.OK, engine.health())
        if route.kind is RouteKind.OPEN:
            return Reply.json(HTTPStatus.OK, {"session": engine.open_session(route.owner, route.session or None)})
        if route.kind is RouteKind.CLOSE:
            engine.close_session(route.session, route.owner)
            return Reply.json(HTTPStatus.OK, {})
        session = engine.session(route.session, route.owner)
        if route.kind is RouteKind.REQUESTS:
            session.submit(request_batch(decode(body)))
            return Reply.json(HTTPStatus.OK, {})
        return Reply.frame(session.messages(min(route.wait_s, engine.settings.max_wait_s)))
    except RefusedError as refused:
        return refused.reply
    except SessionLostError as error:
        return Reply.error(HTTPStatus.NOT_FOUND, SESSION_LOST, str(error))
    except ProtocolError as error:
        return Reply.error(HTTPStatus.BAD_REQUEST, "bad_request", str(error))
    except SAMSegmentError as error:
        return Reply.error(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable", str(error))
    except Exception as error:
        logger.exception("The engine service failed on %s", route.kind.value)
        return Reply.error(HTTPStatus.INTERNAL_SERVER_ERROR, "bug", f"{type(error).__name__}: {error}")


def request_batch(value: Any) -> list[tuple[int, Request]]:
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
