"""``samsegment serve --ray`` as hospital IT runs it: a child process that starts a local Ray
cluster, answers on loopback with the token of its token file, and stops cleanly on SIGTERM."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from SAMSegmentLib.protocol.codec import PROTOCOL_HEADER, PROTOCOL_VERSION

pytest.importorskip("ray.serve")
pytestmark = [pytest.mark.ray, pytest.mark.skipif(os.name != "posix", reason="stopped with SIGTERM")]
ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 300.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ask(port: int, token: str) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request(
        "GET", "/v1/health", headers={"Authorization": f"Bearer {token}", PROTOCOL_HEADER: str(PROTOCOL_VERSION)}
    )
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def test_serve_ray_answers_with_file_tokens_and_stops_on_sigterm(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("# radiology\nfile-token-one\nfile-token-two\n")
    ready, port = tmp_path / "ready.json", free_port()
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    environment.pop("SAMSEGMENT_SERVER_TOKEN", None)
    command = [sys.executable, "-m", "SAMSegmentLib", "serve", "--ray", "--port", str(port), "--token-file",
               str(tokens), "--cpus-per-replica", "0.5", "--ready-file", str(ready)]  # fmt: skip
    with open(tmp_path / "server.log", "wb") as log:
        server = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready.exists():
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "serve --ray did not start"
            time.sleep(1.0)
        assert json.loads(ready.read_text())["port"] == port
        status, health = ask(port, "file-token-two")
        assert status == 200 and health["protocol"] == PROTOCOL_VERSION and health["replica"]
        status, refusal = ask(port, "# radiology")
        assert status == 401 and refusal["code"] == "unauthorized"
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=120) == 0
    finally:
        if server.poll() is None:
            server.kill()
    with pytest.raises(OSError):  # nothing listens any more
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


@pytest.mark.parametrize(("administrators", "expected"), [(None, 60.0), ("7", 7.0)])
def test_a_started_cluster_gives_serves_proxy_time_to_start(administrators, expected):
    """Ray Serve gives its HTTP proxy 5 s to be ready, too little on a busy machine; a cluster the
    server starts allows 60 s in Ray's own processes, unless the administrator set it."""
    probe = (
        "import ray\n"
        "from SAMSegmentLib.service.ray_server import _init_ray\n"
        "_init_ray(None, 1)\n"
        "@ray.remote\n"
        "def allowed():\n"
        "    from ray.serve._private.constants import PROXY_READY_CHECK_TIMEOUT_S\n"
        "    return PROXY_READY_CHECK_TIMEOUT_S\n"
        "print('allowed', ray.get(allowed.remote()))\n"
        "ray.shutdown()\n"
    )
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    environment.pop("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", None)
    if administrators is not None:
        environment["RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S"] = administrators
    done = subprocess.run(
        [sys.executable, "-c", probe], env=environment, capture_output=True, text=True, timeout=START_TIMEOUT_S
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"allowed {expected}" in done.stdout
