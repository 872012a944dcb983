"""Is an engine service there, what is it, and how far away: ``GET /v1/health`` a few times on one
keep-alive connection, without ever blocking (the "Test connection" button of the SAM effect).

The host pumps the probe as it pumps the engine client (``pump`` when ``watched`` sockets are
ready, and from a timer, which also ends it after ``timeout_s``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .answers import Problem, json_answer
from .codec import PROTOCOL_HEADER, PROTOCOL_VERSION, ProtocolVersionError
from .connection import ConnectionLostError, HttpConnection, Response, watched_sockets
from .endpoints import Endpoint

HEALTH_TIMEOUT_S = 3.0
_ROUNDS = 3  # the first answer includes connecting; the round trip is the median of the others


@dataclass(frozen=True)
class Health:
    url: str
    protocol: int
    engine: str  # the engine's SAMSegment version
    models: tuple[str, ...]
    round_trip_ms: float  # one request and its answer on an open connection


class HealthProbe:
    def __init__(self, endpoint: Endpoint, timeout_s: float = HEALTH_TIMEOUT_S) -> None:
        self.endpoint = endpoint
        self.health: Health | None = None
        self.problem: Problem | None = None  # why the server cannot be used
        self.detail = ""  # what the connection or the server said about it
        self._deadline = time.monotonic() + timeout_s
        self._timeout_s = timeout_s
        headers = {"Authorization": f"Bearer {endpoint.token}", PROTOCOL_HEADER: str(PROTOCOL_VERSION)}
        self._connection: HttpConnection | None = HttpConnection(endpoint.host, endpoint.port, headers, timeout_s)
        self._round_trips: list[float] = []
        self._asked_at = 0.0
        self._ask()

    @property
    def done(self) -> bool:
        return self.health is not None or self.problem is not None

    def watched(self) -> list[tuple[int, bool]]:
        return watched_sockets(self._connection)

    def pump(self) -> None:
        if self.done or self._connection is None:
            return
        try:
            self._connection.pump()
            if not self.done and time.monotonic() > self._deadline:
                raise ConnectionLostError(f"no answer within {self._timeout_s:.0f} s.")
        except (ConnectionLostError, ProtocolVersionError) as error:
            self.problem, self.detail = Problem.of(error), str(error)
            self.close()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _ask(self) -> None:
        assert self._connection is not None
        self._asked_at = time.perf_counter()
        self._connection.request("GET", f"{self.endpoint.path}/v1/health", self._on_health)

    def _on_health(self, response: Response) -> None:
        self._round_trips.append(1000.0 * (time.perf_counter() - self._asked_at))
        answer = json_answer(response)
        protocol = answer.get("protocol")
        if protocol != PROTOCOL_VERSION:
            raise ProtocolVersionError(PROTOCOL_VERSION, protocol if isinstance(protocol, int) else -1)
        if len(self._round_trips) < _ROUNDS:
            self._ask()
            return
        later = sorted(self._round_trips[1:])
        models = answer.get("models")
        self.health = Health(
            self.endpoint.url,
            protocol,
            str(answer.get("engine", "")),
            tuple(str(m) for m in models) if isinstance(models, list) else (),
            later[len(later) // 2],
        )
        self.close()
