"""The engine service's answers as the client reads them: a JSON answer or the error it carries
(``EngineError``), and why an engine cannot serve this client (``Problem``), in a sentence for
the user (``describe_problem``)."""

from __future__ import annotations

import json
from enum import Enum
from http import HTTPStatus

from .codec import PROTOCOL_VERSION, ProtocolVersionError
from .connection import ConnectionLostError, Response

# Error codes the service answers with (service.routes, service.ray_server) and this client reads.
SESSION_LOST, PROTOCOL_MISMATCH = "session_lost", "protocol_mismatch"


class EngineError(ConnectionLostError):
    """The engine answered with an error (wrong token, other protocol version, session lost)."""

    def __init__(self, text: str, status: int = 0, code: str = "") -> None:
        super().__init__(text)
        self.status, self.code = status, code


class Problem(str, Enum):
    """Why an engine cannot serve this client."""

    TOKEN_REFUSED = "token_refused"  # 401
    PROTOCOL_MISMATCH = "protocol_mismatch"  # 409, or a health answer naming another version
    UNREACHABLE = "unreachable"  # no connection, or it broke
    REFUSED = "refused"  # another error answer (503: too many sessions, 500, ...)

    @classmethod
    def of(cls, error: Exception) -> Problem:
        if isinstance(error, ProtocolVersionError):
            return cls.PROTOCOL_MISMATCH
        if isinstance(error, EngineError):
            if error.status == HTTPStatus.UNAUTHORIZED:
                return cls.TOKEN_REFUSED
            if error.code == PROTOCOL_MISMATCH or error.status == HTTPStatus.CONFLICT:
                return cls.PROTOCOL_MISMATCH
            return cls.REFUSED
        return cls.UNREACHABLE


def describe_problem(engine: str, error: Exception) -> str:
    """One sentence or two on why ``engine`` ("The SAM server at http://...") cannot serve."""
    problem = Problem.of(error)
    if problem is Problem.TOKEN_REFUSED:
        return f"{engine} refused the token: enter the token its administrator gave you."
    if problem is Problem.PROTOCOL_MISMATCH:
        return f"{engine} does not speak this client's protocol version {PROTOCOL_VERSION}: {error}"
    if problem is Problem.REFUSED:
        return f"{engine} answered: {error}"
    return f"{engine} cannot be reached: {error}"


def json_answer(response: Response) -> dict[str, object]:
    try:
        value = json.loads(bytes(response.body) or b"{}")
    except ValueError:
        value = {}
    if response.status != 200:
        text = value.get("error") if isinstance(value, dict) else None
        code = value.get("code") if isinstance(value, dict) else None
        raise EngineError(str(text or f"HTTP {response.status}"), response.status, str(code or ""))
    if not isinstance(value, dict):
        raise EngineError("The engine's answer is malformed.")
    return value
