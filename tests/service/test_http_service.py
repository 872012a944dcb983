"""The engine service over HTTP, in this process with a tiny random-weight model: the protocol's
answers, its refusals, and a client that rebuilds a lost session."""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest
from test_worker_doubles import KEEP_GOING, organ_box

from SAMSegmentLib.errors import SAMSegmentError
from SAMSegmentLib.propagation import ObjectPrompts, PropagationRequest
from SAMSegmentLib.protocol import PROTOCOL_VERSION, LoadModel, MessageKind, Predict, Propagate, SetVolume
from SAMSegmentLib.protocol.codec import PROTOCOL_HEADER, encode_bytes
from SAMSegmentLib.protocol.endpoints import Endpoint, FixedEndpoint
from SAMSegmentLib.protocol.engine_client import EngineClient, wait_for
from SAMSegmentLib.service.engine import EngineService, ServiceSettings, SessionLostError
from SAMSegmentLib.service.http_server import HttpEngineServer
from SAMSegmentLib.service.routes import Tokens
from SAMSegmentLib.volume import Axis
from SAMSegmentLib.worker import InferenceWorker, WorkerSettings

TOKEN = "test-token"
OTHER_TOKEN = "another-department-token"


@pytest.fixture
def service(tiny_sam_model):
    engine = EngineService(
        ServiceSettings(max_sessions=4),
        lambda budget: InferenceWorker(
            WorkerSettings(budget, prefetch_slices=0), loader=lambda request: tiny_sam_model
        ),
    )
    server = HttpEngineServer(("127.0.0.1", 0), engine, Tokens([TOKEN, OTHER_TOKEN]), max_upload_bytes=8 << 20)
    server.serve_in_thread()
    yield server
    server.shutdown()
    server.server_close()
    engine.close()


def client_of(server: HttpEngineServer, token: str = TOKEN) -> EngineClient:
    return EngineClient(FixedEndpoint(Endpoint("127.0.0.1", server.port, token)), poll_wait_s=2.0)


def answer(client: EngineClient, request_id: int, timeout_s: float = 60.0):
    messages = wait_for(client, lambda ms: any(m.request_id == request_id and m.kind.final for m in ms), timeout_s)
    return messages, next(m for m in messages if m.request_id == request_id and m.kind.final)


def raw(server: HttpEngineServer, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    sent = {"Authorization": f"Bearer {TOKEN}", PROTOCOL_HEADER: str(PROTOCOL_VERSION), **(headers or {})}
    connection.request(method, path, body=body, headers=sent)
    response = connection.getresponse()
    return response.status, response.read()


def announce_upload(server: HttpEngineServer, path: str, length: int):
    """Send only the head of an upload of ``length`` bytes and read the answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"{PROTOCOL_HEADER}: {PROTOCOL_VERSION}\r\nContent-Length: {length}\r\n\r\n"
        )
        connection.sendall(head.encode())
        response = http.client.HTTPResponse(connection)
        response.begin()
        return response.status, response.read()


def ready(client: EngineClient, volume) -> None:
    client.submit(LoadModel("sam_vit_b", "cpu"))
    _, final = answer(client, client.submit(SetVolume(volume, volume_key="phantom")))
    assert final.kind is MessageKind.RESULT, final.text


def test_preview_and_propagation_through_the_service(service, ct_phantom):
    client = client_of(service)
    ready(client, ct_phantom)
    _, preview = answer(client, client.submit(Predict(Axis.AXIAL, 6, organ_box(ct_phantom))))
    assert preview.kind is MessageKind.RESULT and preview.value.prediction.mask.shape == ct_phantom.array.shape[1:]
    request = PropagationRequest(Axis.AXIAL, 6, [ObjectPrompts("organ", organ_box(ct_phantom))])
    messages, result = answer(client, client.submit(Propagate(request, KEEP_GOING)))
    slices = sorted(m.value.index for m in messages if m.kind is MessageKind.SLICE)
    assert result.kind is MessageKind.RESULT
    assert slices == list(range(ct_phantom.array.shape[0]))
    assert sorted(result.value.objects["organ"].slices) == slices
    client.close()


def test_cancel_reaches_the_running_propagation(service, ct_phantom):
    client = client_of(service)
    ready(client, ct_phantom)
    request = PropagationRequest(Axis.AXIAL, 6, [ObjectPrompts("organ", organ_box(ct_phantom))])
    propagation = client.submit(Propagate(request, KEEP_GOING))
    wait_for(client, lambda ms: any(m.kind is MessageKind.SLICE for m in ms), 60)
    client.cancel(propagation)
    messages, final = answer(client, propagation)
    assert final.kind in (MessageKind.CANCELLED, MessageKind.RESULT)
    reported = {m.value.index for m in messages if m.kind is MessageKind.SLICE}
    if final.kind is MessageKind.CANCELLED:  # the partial result has exactly the slices reported
        assert set(final.value.objects["organ"].slices) <= reported | {6}
    client.close()


def test_a_wrong_token_is_refused_before_any_work(service):
    status, body = raw(service, "POST", "/v1/sessions", headers={"Authorization": "Bearer nope"})
    assert status == 401 and json.loads(body)["code"] == "unauthorized"
    client = client_of(service, token="nope")
    _, final = answer(client, client.submit(LoadModel("sam_vit_b", "cpu")))
    assert final.kind is MessageKind.ERROR and "token" in final.text
    assert service.engine.health()["sessions"] == 0


def test_another_protocol_version_gets_one_clear_answer(service):
    status, body = raw(service, "GET", "/v1/health", headers={PROTOCOL_HEADER: str(PROTOCOL_VERSION + 1)})
    reply = json.loads(body)
    assert status == 409 and reply["code"] == "protocol_mismatch"
    assert f"version {PROTOCOL_VERSION}" in reply["error"] and f"version {PROTOCOL_VERSION + 1}" in reply["error"]
    status, body = raw(service, "GET", "/v1/health")
    assert status == 200 and json.loads(body)["protocol"] == PROTOCOL_VERSION


def test_malformed_oversized_and_unknown_requests_leave_the_service_serving(service, ct_phantom):
    _, body = raw(service, "POST", "/v1/sessions")
    session = json.loads(body)["session"]
    status, body = raw(service, "POST", f"/v1/sessions/{session}/requests", b"SAMS garbage")
    assert status == 400 and json.loads(body)["code"] == "bad_request"
    status, body = raw(service, "POST", f"/v1/sessions/{session}/requests", encode_bytes(["not a request"]))
    assert status == 400
    status, body = announce_upload(service, f"/v1/sessions/{session}/requests", 9 << 20)
    assert status == 413 and json.loads(body)["code"] == "too_large"  # answered before the upload
    status, body = raw(service, "GET", "/v1/sessions/not-a-session/messages")
    assert status == 404 and json.loads(body)["code"] == "session_lost"
    client = client_of(service)  # another client is still served
    ready(client, ct_phantom)
    client.close()


def test_a_lost_session_is_rebuilt_without_the_user_seeing_it(service, ct_phantom):
    client = client_of(service)
    ready(client, ct_phantom)
    _, before = answer(client, client.submit(Predict(Axis.AXIAL, 6, organ_box(ct_phantom))))
    service.engine.close()  # as if the server had restarted, or the session expired
    _, preview = answer(client, client.submit(Predict(Axis.AXIAL, 6, organ_box(ct_phantom))))
    assert preview.kind is MessageKind.RESULT, preview.text  # the model and volume were sent again first
    assert (preview.value.prediction.mask == before.value.prediction.mask).all()
    assert client.restarts == 1 and service.engine.health()["sessions"] == 1
    client.close()


def test_another_tokens_session_is_as_unknown_as_a_missing_one(service):
    _, body = raw(service, "POST", "/v1/sessions")
    session = json.loads(body)["session"]
    other = {"Authorization": f"Bearer {OTHER_TOKEN}"}
    for method, path in (("GET", f"/v1/sessions/{session}/messages"), ("POST", f"/v1/sessions/{session}/requests")):
        status, body = raw(service, method, path, encode_bytes([]), headers=other)
        assert status == 404 and json.loads(body)["code"] == "session_lost"  # not 403: nothing is revealed
    raw(service, "DELETE", f"/v1/sessions/{session}", headers=other)  # ignored: not its session
    status, _ = raw(service, "GET", f"/v1/sessions/{session}/messages")
    assert status == 200  # its owner still has it


def test_a_client_gone_mid_upload_or_slow_leaves_the_others_served(service, ct_phantom):
    _, body = raw(service, "POST", "/v1/sessions")
    session = json.loads(body)["session"]
    head = (
        f"POST /v1/sessions/{session}/requests HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"{PROTOCOL_HEADER}: {PROTOCOL_VERSION}\r\nContent-Length: {4 << 20}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", service.port), timeout=30) as gone:
        gone.sendall(head + b"\0" * (1 << 20))  # a quarter of its upload, then it disappears
    slow = socket.create_connection(("127.0.0.1", service.port), timeout=30)
    slow.sendall(head + b"\0" * 1000)  # trickles: its thread waits, no one else does
    client = client_of(service)
    ready(client, ct_phantom)
    _, preview = answer(client, client.submit(Predict(Axis.AXIAL, 6, organ_box(ct_phantom))))
    assert preview.kind is MessageKind.RESULT
    client.close()
    slow.close()
    status, _ = raw(service, "GET", f"/v1/sessions/{session}/messages")
    assert status == 200  # the half-uploaded requests never reached the session; it still works


def test_tokens_come_from_a_file_with_comments(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("# radiology\nfirst-token\n\n  second-token  \n")
    tokens = Tokens.from_file(path)
    assert tokens.owner("Bearer first-token") and tokens.owner("Bearer second-token")
    assert tokens.owner("Bearer first-token") != tokens.owner("Bearer second-token")
    assert tokens.owner("Bearer # radiology") is None and tokens.owner("first-token") is None
    path.write_text("# nobody yet\n")
    with pytest.raises(SAMSegmentError, match="holds no token"):
        Tokens.from_file(path)


def test_idle_sessions_expire_and_free_their_worker(tiny_sam_model):
    stopped = []

    def worker(budget: int) -> InferenceWorker:
        made = InferenceWorker(WorkerSettings(budget, prefetch_slices=0), loader=lambda request: tiny_sam_model)
        shutdown = made.shutdown
        made.shutdown = lambda timeout=None: (stopped.append(budget), shutdown(timeout))  # type: ignore[method-assign]
        return made

    settings = ServiceSettings(max_sessions=2, idle_session_s=0.2, expiry_check_s=0.05, embedding_budget_bytes=64 << 20)
    engine = EngineService(settings, worker)
    engine.expire_periodically()
    session = engine.open_session("owner")
    deadline = time.monotonic() + 10
    while engine.holds(session) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not engine.holds(session) and stopped == [32 << 20]  # each session gets its share of the budget
    with pytest.raises(SessionLostError):
        engine.session(session, "owner")
    engine.close()


def test_serving_beyond_loopback_needs_a_token(monkeypatch):
    from SAMSegmentLib.cli import build_parser
    from SAMSegmentLib.cli.serve_command import service_tokens
    from SAMSegmentLib.service.launcher import TOKEN_ENVIRONMENT

    monkeypatch.delenv(TOKEN_ENVIRONMENT, raising=False)
    with pytest.raises(SAMSegmentError, match="without a token"):
        service_tokens(build_parser().parse_args(["serve", "--host", "0.0.0.0"]))
    monkeypatch.setenv(TOKEN_ENVIRONMENT, "from-the-environment")
    tokens = service_tokens(build_parser().parse_args(["serve", "--host", "0.0.0.0"]))
    assert tokens.owner("Bearer from-the-environment") is not None


def test_a_request_that_had_started_answering_when_its_session_was_lost_ends_with_a_clear_error(service, ct_phantom):
    client = client_of(service)
    ready(client, ct_phantom)
    request = PropagationRequest(Axis.AXIAL, 6, [ObjectPrompts("organ", organ_box(ct_phantom))])
    propagation = client.submit(Propagate(request, KEEP_GOING))
    wait_for(client, lambda ms: any(m.kind is MessageKind.SLICE for m in ms), 60)
    service.engine.close()
    _, lost = answer(client, propagation)
    assert lost.kind is MessageKind.ERROR and "lost this session" in lost.text and "unchanged" in lost.text
    _, preview = answer(client, client.submit(Predict(Axis.AXIAL, 6, organ_box(ct_phantom))))
    assert preview.kind is MessageKind.RESULT, preview.text
    client.close()


def test_a_closed_session_is_freed_on_the_server(service, ct_phantom):
    client = client_of(service)
    ready(client, ct_phantom)
    assert service.engine.health()["sessions"] == 1
    client.close()  # asks the server to close it, without waiting
    deadline = time.monotonic() + 10
    while service.engine.health()["sessions"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert service.engine.health()["sessions"] == 0
