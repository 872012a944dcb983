"""The real engine service (``samsegment serve``, tiny random-weight SAM: tiny_engine.py) run as a
server someone else runs: its own process on 127.0.0.1 with a token, a port that stays the same
when it is restarted, stopped or killed by the test. Plumbing only, never accuracy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

TESTS = Path(__file__).resolve().parent
START_TIMEOUT_S = 180.0  # importing torch on a busy 2-core machine


class TinyServer:
    def __init__(self, token: str, wait: Callable[[Callable[[], bool], float, str], None]) -> None:
        """``wait(condition, timeout_s, what)`` waits the way the test's main loop does."""
        self.token, self.wait = token, wait
        self.port = 0  # chosen by the system on the first start, kept for restarts
        self._process: subprocess.Popen[bytes] | None = None
        self._folder = tempfile.TemporaryDirectory(prefix="samsegment-tiny-server-")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        ready = Path(self._folder.name) / "ready.json"
        ready.unlink(missing_ok=True)
        environment = dict(os.environ, SAMSEGMENT_SERVER_TOKEN=self.token, PYTHONPATH=str(TESTS.parent))
        command = [sys.executable, str(TESTS / "tiny_engine.py"), "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--ready-file", str(ready), "--exit-with-parent"]
        with open(Path(self._folder.name) / "server.log", "ab") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, env=environment
            )
        process = self._process
        self.wait(lambda: ready.exists() or process.poll() is not None, START_TIMEOUT_S, "the server to listen")
        if not ready.exists():
            raise RuntimeError(f"The tiny engine server did not start:\n{self.log()}")
        self.port = int(json.loads(ready.read_text())["port"])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """End the server (SIGKILL: as a crash or a replica scaled away does) and wait until it is gone."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)

    def sessions(self) -> int:
        """How many sessions the server holds now (its health answer)."""
        from SAMSegmentLib.protocol import PROTOCOL_VERSION
        from SAMSegmentLib.protocol.codec import PROTOCOL_HEADER

        request = urllib.request.Request(
            self.url + "/v1/health",
            headers={"Authorization": f"Bearer {self.token}", PROTOCOL_HEADER: str(PROTOCOL_VERSION)},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # straight to 127.0.0.1
        with opener.open(request, timeout=10) as answer:
            return int(json.load(answer)["sessions"])

    def log(self) -> str:
        path = Path(self._folder.name) / "server.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def close(self) -> None:
        self.stop()
        self._folder.cleanup()
