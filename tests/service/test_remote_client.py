"""The engine client and the health probe against a server someone else runs, on 127.0.0.1: a
keep-alive connection closed while idle, a connection that breaks mid-request, another protocol
version, a wrong token, a server that is not there."""

from __future__ import annotations

import select
import socket
import threading
import time

import pytest
from idle_closing_proxy import IdleClosingProxy
from test_http_service import TOKEN, answer, ready, service  # noqa: F401 - the fixture
from test_worker_doubles import organ_box

import SAMSegmentLib.protocol.engine_client as engine_client
import SAMSegmentLib.protocol.health as health
from SAMSegmentLib.protocol import MessageKind, Predict
from SAMSegmentLib.protocol.answers import Problem
from SAMSegmentLib.protocol.connection import ConnectionLostError, HttpConnection
from SAMSegmentLib.protocol.endpoints import Endpoint, FixedEndpoint
from SAMSegmentLib.protocol.engine_client import EngineClient
from SAMSegmentLib.protocol.health import HealthProbe
from SAMSegmentLib.volume import Axis


def client_at(url: str, token: str = TOKEN) -> EngineClient:
    return EngineClient(FixedEndpoint(Endpoint.from_url(url, token)), poll_wait_s=2.0)


def probe(url: str, token: str = TOKEN) -> HealthProbe:
    """Pumped when its socket is ready, as Slicer's event loop does."""
    checking = HealthProbe(Endpoint.from_url(url, token))
    deadline = time.monotonic() + 10
    while not checking.done and time.monotonic() < deadline:
        watched = checking.watched()
        select.select([fd for fd, _ in watched], [fd for fd, write in watched if write], [], 0.05)
        checking.pump()
    assert checking.done
    return checking


def free_port() -> int:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        return unused.getsockname()[1]


def test_server_addresses_are_read_or_refused_clearly():
    behind_a_proxy = Endpoint("gpu-01.hospital.org", 8470, "t", "/sam")
    assert Endpoint.from_url("http://gpu-01.hospital.org:8470/sam/", "t") == behind_a_proxy
    assert Endpoint.from_url("10.0.0.5:9000", "t").url == "http://10.0.0.5:9000"
    assert Endpoint.from_url("http://[::1]:8470", "t").url == "http://[::1]:8470"
    assert Endpoint.from_url("http://sam.example.org", "t").port == 80
    refusals = {
        "https://sam.example.org": "only http://",
        "http://:8470": "names no server",
        "http://host:port": "is not a server address",
    }
    for wrong, why in refusals.items():
        with pytest.raises(ValueError, match=why):
            Endpoint.from_url(wrong, "t")
    assert "s3cret" not in repr(Endpoint.from_url("http://sam:8470", "s3cret"))  # never in a log


def test_an_idle_connection_closed_by_a_proxy_is_reopened_without_an_error(service, ct_phantom):  # noqa: F811
    proxy = IdleClosingProxy(service.port, idle_s=0.2)
    try:
        client = client_at(proxy.url)
        ready(client, ct_phantom)
        for _ in range(3):
            time.sleep(0.6)  # idle: the proxy closes the connection that carries requests
            _, preview = answer(client, client.submit(Predict(Axis.AXIAL, 6, organ_box(ct_phantom))))
            assert preview.kind is MessageKind.RESULT, preview.text
        assert proxy.closed_idle >= 3 and client.reconnects >= 3 and client.restarts == 0
        client.close()
    finally:
        proxy.close()


def test_a_server_that_is_not_there_is_named_and_nothing_is_started(ct_phantom):
    url = f"http://127.0.0.1:{free_port()}"
    client = client_at(url)
    _, final = answer(client, client.submit(Predict(Axis.AXIAL, 6, organ_box(ct_phantom))))
    assert final.kind is MessageKind.ERROR
    assert f"The SAM server at {url} cannot be reached" in final.text and "unchanged" in final.text
    checked = probe(url)
    assert checked.problem is Problem.UNREACHABLE and "refused" in checked.detail


def test_the_health_probe_reports_the_server_and_its_round_trip(service):  # noqa: F811
    checked = probe(f"http://127.0.0.1:{service.port}")
    assert checked.problem is None and checked.health.protocol == engine_client.PROTOCOL_VERSION
    assert "litemedsam" in checked.health.models and 0 < checked.health.round_trip_ms < 1000
    print(f"health round trip on loopback: {checked.health.round_trip_ms:.2f} ms")
    assert probe(f"http://127.0.0.1:{service.port}", token="nope").problem is Problem.TOKEN_REFUSED
    assert probe(f"http://localhost:{service.port}").health is not None  # a name, looked up on a thread


def test_another_protocol_version_gets_one_message_naming_both(service, ct_phantom, monkeypatch):  # noqa: F811
    ours = engine_client.PROTOCOL_VERSION
    monkeypatch.setattr(engine_client, "PROTOCOL_VERSION", ours + 1)  # a client newer than the server
    monkeypatch.setattr(health, "PROTOCOL_VERSION", ours + 1)
    client = client_at(f"http://127.0.0.1:{service.port}")
    _, final = answer(client, client.submit(Predict(Axis.AXIAL, 6, organ_box(ct_phantom))))
    assert final.kind is MessageKind.ERROR and "HTTP 409" not in final.text
    assert f"version {ours}" in final.text and f"version {ours + 1}" in final.text
    checked = probe(f"http://127.0.0.1:{service.port}")
    assert checked.problem is Problem.PROTOCOL_MISMATCH and f"version {ours}" in checked.detail


class ScriptedServer:
    """A loopback socket server that treats each connection as the test says: ``"answer"``
    (read a request, answer 200), ``"close"`` (read a request, close without answering),
    ``"hang"`` (read a request, never answer nor close: a network gone without a word)."""

    def __init__(self, plan: list[str]) -> None:
        self.plan, self.requests = list(plan), []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.plan:
            connection, _ = self._listener.accept()
            with connection:
                head = connection.recv(65536)
                self.requests.append(head.split(b"\r\n", 1)[0].decode())
                treatment = self.plan.pop(0)
                if treatment == "answer":
                    self._read_body(connection, head)
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                if treatment != "close":
                    connection.recv(65536)  # until the client closes, or the test ends

    @staticmethod
    def _read_body(connection: socket.socket, received: bytes) -> None:
        head, _, body = received.partition(b"\r\n\r\n")
        lengths = [line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")]
        length = int(lengths[0]) if lengths else 0
        while len(body) < length:
            body += connection.recv(1 << 20)

    def close(self) -> None:
        self._listener.close()


def pump_until(connection: HttpConnection, done, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "timed out"
        connection.pump()
        time.sleep(0.002)


def test_a_poll_the_server_dropped_unanswered_is_sent_once_more_on_a_fresh_connection():
    server = ScriptedServer(["close", "answer"])
    connection, answers = HttpConnection("127.0.0.1", server.port, {}), []
    connection.request("GET", "/v1/sessions/s/messages", answers.append)
    pump_until(connection, lambda: answers)
    assert answers[0].status == 200 and server.requests == ["GET /v1/sessions/s/messages HTTP/1.1"] * 2
    assert connection.reopened == 1
    server.close()


def test_a_request_the_server_dropped_unanswered_is_never_sent_twice():
    server = ScriptedServer(["close", "answer"])
    connection = HttpConnection("127.0.0.1", server.port, {})
    connection.request("POST", "/v1/sessions/s/requests", lambda response: None, [b"batch"])
    with pytest.raises(ConnectionLostError, match="before answering"):
        pump_until(connection, lambda: False)
    assert len(server.requests) == 1  # it may have been taken: sending it again could run it twice
    server.close()


def test_a_request_that_sees_no_byte_move_for_too_long_ends_with_a_clear_error():
    server = ScriptedServer(["hang"])
    connection = HttpConnection("127.0.0.1", server.port, {}, answer_timeout_s=0.3)
    connection.request("GET", "/v1/sessions/s/messages?wait=0", lambda response: None)
    with pytest.raises(ConnectionLostError, match=r"No answer from 127\.0\.0\.1"):
        pump_until(connection, lambda: False)
    server.close()


def test_a_client_that_ends_its_session_frees_it_on_the_server(service, ct_phantom):  # noqa: F811
    client = client_at(f"http://127.0.0.1:{service.port}")
    ready(client, ct_phantom)
    client.end_session()  # what Slicer does when the user picks another engine
    deadline = time.monotonic() + 10
    while not client.session_ended and time.monotonic() < deadline:
        client.pump()
        time.sleep(0.01)
    assert client.session_ended and service.engine.health()["sessions"] == 0
    client.close()


def test_a_request_cut_off_while_it_was_sent_goes_out_again_whole():
    server = ScriptedServer(["close", "answer"])
    connection, answers = HttpConnection("127.0.0.1", server.port, {}), []
    connection.request("POST", "/v1/sessions/s/requests", answers.append, [bytes(16 << 20)])  # a volume
    pump_until(connection, lambda: answers)
    assert answers[0].status == 200 and len(server.requests) == 2 and connection.reopened == 1
    server.close()
