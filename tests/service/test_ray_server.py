"""The engine service on Ray Serve (``samsegment serve --ray``) with the tiny random-weight SAM: two
engine replicas on a local Ray cluster, loopback only. Sessions stick to their replica; a
replica killed mid-propagation loses only its sessions, whose clients rebuild them; the HTTP
rules are the single-process service's."""

from __future__ import annotations

import functools
import http.client
import json
import os
import socket
from pathlib import Path

import pytest
from synthetic import make_ct_phantom
from test_worker_doubles import KEEP_GOING, organ_box
from tiny_engine import tiny_worker

from SAMSegmentLib.propagation import ObjectPrompts, PropagationRequest
from SAMSegmentLib.protocol import PROTOCOL_VERSION, LoadModel, MessageKind, Predict, Propagate, SetVolume
from SAMSegmentLib.protocol.codec import PROTOCOL_HEADER, encode_bytes
from SAMSegmentLib.protocol.endpoints import Endpoint, FixedEndpoint
from SAMSegmentLib.protocol.engine_client import EngineClient, wait_for
from SAMSegmentLib.service.engine import ServiceSettings
from SAMSegmentLib.service.routes import Route, RouteKind, Tokens
from SAMSegmentLib.volume import Axis

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")
pytestmark = pytest.mark.ray

TOKEN, OTHER_TOKEN = "ray-test-token", "another-department-token"
ROOT = Path(__file__).resolve().parents[2]
ENCODE_DELAY_S = 0.15  # a propagation lasts seconds: long enough to kill its replica mid-way


@pytest.fixture(scope="module")
def server():
    """One Ray cluster and Serve application for the whole module (starting one takes ~10 s)."""
    from SAMSegmentLib.service import ray_server

    path = os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
    app = ray_server.build_app(
        ServiceSettings(max_sessions=8),
        Tokens([TOKEN, OTHER_TOKEN]),
        functools.partial(tiny_worker, encode_delay_s=ENCODE_DELAY_S),
        min_replicas=2,
        max_replicas=2,
        cpus_per_replica=0.5,
        max_upload_bytes=8 << 20,
    )
    port = ray_server.start(app, "127.0.0.1", 0)
    yield port
    ray_server.stop()


def client_of(port: int, token: str = TOKEN) -> EngineClient:
    return EngineClient(FixedEndpoint(Endpoint("127.0.0.1", port, token)), poll_wait_s=2.0)


def answer(client: EngineClient, request_id: int, timeout_s: float = 120.0):
    messages = wait_for(client, lambda ms: any(m.request_id == request_id and m.kind.final for m in ms), timeout_s)
    return messages, next(m for m in messages if m.request_id == request_id and m.kind.final)


def raw(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    sent = {"Authorization": f"Bearer {TOKEN}", PROTOCOL_HEADER: str(PROTOCOL_VERSION), **(headers or {})}
    connection.request(method, path, body=body, headers=sent)
    response = connection.getresponse()
    return response.status, response.read()


def close(port: int, *clients: EngineClient) -> None:
    """Close the clients and their sessions (a replica holds at most max_sessions)."""
    for client in clients:
        if client.session_id is not None:
            raw(port, "DELETE", f"/v1/sessions/{client.session_id}")
        client.close()


def ready(client: EngineClient, volume) -> None:
    client.submit(LoadModel("sam_vit_b", "cpu"))
    _, final = answer(client, client.submit(SetVolume(volume, volume_key="phantom")))
    assert final.kind is MessageKind.RESULT, final.text


def replica_of(session: str) -> str:
    """The replica Serve's router sends ``session``'s requests to."""
    from SAMSegmentLib.service.ray_server import APP_NAME

    engines = serve.get_deployment_handle("EngineReplica", APP_NAME).options(multiplexed_model_id=session)
    reply = engines.handle.remote(Route(RouteKind.HEALTH), b"").result(timeout_s=30)
    return json.loads(reply.body)["replica"]


def test_health_names_the_protocol_and_models(server):
    status, body = raw(server, "GET", "/v1/health")
    health = json.loads(body)
    assert status == 200 and health["protocol"] == PROTOCOL_VERSION and "litemedsam" in health["models"]


def test_each_sessions_requests_reach_the_replica_that_holds_it(server):
    volume = make_ct_phantom((4, 48, 64))
    clients = [client_of(server) for _ in range(4)]
    for client in clients:
        ready(client, volume)
    sessions = [client.session_id for client in clients]
    assert len({replica_of(session) for session in sessions}) == 2  # spread over both replicas
    for _ in range(3):
        for client in clients:
            _, preview = answer(client, client.submit(Predict(Axis.AXIAL, 2, organ_box(volume))))
            assert preview.kind is MessageKind.RESULT, preview.text
    assert [client.restarts for client in clients] == [0, 0, 0, 0]  # never sent to a replica without it
    assert [client.session_id for client in clients] == sessions
    close(server, *clients)


def test_the_service_rules_hold_on_ray(server):
    status, body = raw(server, "POST", "/v1/sessions", headers={"Authorization": "Bearer nope"})
    assert status == 401 and json.loads(body)["code"] == "unauthorized"
    status, body = raw(server, "GET", "/v1/health", headers={PROTOCOL_HEADER: str(PROTOCOL_VERSION + 1)})
    reply = json.loads(body)
    assert status == 409 and f"version {PROTOCOL_VERSION + 1}" in reply["error"]
    _, body = raw(server, "POST", "/v1/sessions")
    session = json.loads(body)["session"]
    status, body = raw(server, "POST", f"/v1/sessions/{session}/requests", b"SAMS garbage")
    assert status == 400 and json.loads(body)["code"] == "bad_request"
    status, body = raw(server, "POST", f"/v1/sessions/{session}/requests", b"\0" * (9 << 20))
    assert status == 413 and json.loads(body)["code"] == "too_large"
    other = {"Authorization": f"Bearer {OTHER_TOKEN}"}
    status, body = raw(server, "POST", f"/v1/sessions/{session}/requests", encode_bytes([]), headers=other)
    assert status == 404 and json.loads(body)["code"] == "session_lost"
    status, body = raw(server, "GET", "/v1/sessions/never-opened/messages")
    assert status == 404 and json.loads(body)["code"] == "session_lost"
    status, _ = raw(server, "POST", f"/v1/sessions/{session}/requests", encode_bytes([]))
    assert status == 200  # its owner still has it
    raw(server, "DELETE", f"/v1/sessions/{session}")


def test_a_replica_killed_mid_propagation_loses_only_its_sessions(server):
    volume = make_ct_phantom((40, 48, 64))
    victim, bystanders = client_of(server), []
    ready(victim, volume)
    doomed = replica_of(victim.session_id)
    while not bystanders or replica_of(bystanders[-1].session_id) == doomed:
        assert len(bystanders) < 4, "every new session went to the same replica"
        bystanders.append(client_of(server))
        ready(bystanders[-1], volume)
    bystander = bystanders[-1]
    _, first = answer(victim, victim.submit(Predict(Axis.AXIAL, 20, organ_box(volume))))

    request = PropagationRequest(Axis.AXIAL, 20, [ObjectPrompts("organ", organ_box(volume))])
    propagation = victim.submit(Propagate(request, KEEP_GOING))
    seen = wait_for(victim, lambda ms: any(m.request_id == propagation and m.kind is MessageKind.SLICE for m in ms), 60)
    ray.kill(ray.get_actor(doomed, namespace="serve"), no_restart=True)
    messages, lost = answer(victim, propagation)
    assert lost.kind is MessageKind.ERROR and "unchanged" in lost.text, lost.text
    assert len([m for m in seen + messages if m.kind is MessageKind.SLICE]) < volume.array.shape[0]  # mid-way

    _, other = answer(bystander, bystander.submit(Predict(Axis.AXIAL, 20, organ_box(volume))))
    assert other.kind is MessageKind.RESULT and bystander.restarts == 0  # the other replica kept serving
    _, again = answer(victim, victim.submit(Predict(Axis.AXIAL, 20, organ_box(volume))))
    assert again.kind is MessageKind.RESULT, again.text  # a new session, the volume sent again
    assert victim.restarts == 1 and replica_of(victim.session_id) != doomed
    assert again.value.prediction.mask.shape == first.value.prediction.mask.shape  # (random weights differ per replica)
    close(server, victim, *bystanders)


def test_a_client_gone_mid_upload_or_slow_leaves_the_others_served(server):
    _, body = raw(server, "POST", "/v1/sessions")
    session = json.loads(body)["session"]
    head = (
        f"POST /v1/sessions/{session}/requests HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"{PROTOCOL_HEADER}: {PROTOCOL_VERSION}\r\nContent-Length: {4 << 20}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server), timeout=30) as gone:
        gone.sendall(head + b"\0" * (1 << 20))  # a quarter of its upload, then it disappears
    slow = socket.create_connection(("127.0.0.1", server), timeout=30)
    slow.sendall(head + b"\0" * 1000)  # trickles
    volume = make_ct_phantom((4, 48, 64))
    client = client_of(server)
    ready(client, volume)
    _, preview = answer(client, client.submit(Predict(Axis.AXIAL, 2, organ_box(volume))))
    assert preview.kind is MessageKind.RESULT, preview.text
    close(server, client)
    slow.close()
    status, _ = raw(server, "POST", f"/v1/sessions/{session}/requests", encode_bytes([]))
    assert status == 200  # the broken uploads never reached the session; it still works
    raw(server, "DELETE", f"/v1/sessions/{session}")
