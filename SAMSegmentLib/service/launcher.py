"""Start the engine service as a child process on this computer, without ever waiting for it.

This is what the Slicer extension does by default: ``PythonSlicer -m SAMSegmentLib serve`` on the
loopback interface, a port the system chooses, and a fresh random token passed in the
environment (never on the command line, where other users could read it). The child writes a
small JSON "ready" file once it listens; ``endpoint()`` looks for it and returns at once. The
child exits when its standard input closes, so it never outlives the Slicer that started it,
even after a crash.

Importing this module needs no torch.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ..protocol.endpoints import Endpoint

TOKEN_ENVIRONMENT = "SAMSEGMENT_SERVER_TOKEN"
# Importing torch and the models takes 2-10 s on a laptop; a first start after installing
# packages (Python compiling them) can take a minute.
START_TIMEOUT_S = 180.0
_LOG_TAIL_LINES = 15


class EngineProcess:
    def __init__(
        self,
        python: str | None = None,
        python_path: Sequence[str] = (),
        extra_args: Sequence[str] = (),
        start_timeout_s: float = START_TIMEOUT_S,
        entry: Sequence[str] = ("-m", "SAMSegmentLib", "serve"),
    ) -> None:
        """``python`` runs the engine (Slicer's PythonSlicer; this interpreter by default);
        ``python_path`` are folders it needs on its path (where SAMSegmentLib is); ``entry`` is
        what it runs, taking ``samsegment serve``'s options."""
        self.entry = list(entry)
        self.python = python or sys.executable
        self.python_path = list(python_path)
        self.extra_args = list(extra_args)
        self.start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._token = ""
        self._endpoint: Endpoint | None = None
        self._deadline = 0.0
        self._failure: str | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path | None:
        return Path(self._folder.name) / "engine.log" if self._folder is not None else None

    def start(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        self.stop()
        self._folder = tempfile.TemporaryDirectory(prefix="samsegment-engine-")
        folder = Path(self._folder.name)
        self._token = secrets.token_urlsafe(32)
        environment = dict(os.environ)
        environment[TOKEN_ENVIRONMENT] = self._token
        environment["PYTHONPATH"] = os.pathsep.join(
            [*self.python_path, *filter(None, [environment.get("PYTHONPATH", "")])]
        )
        environment["PYTHONUNBUFFERED"] = "1"
        command = [
            self.python,
            *self.entry,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--ready-file",
            str(folder / "ready.json"),
            "--exit-with-parent",
            *self.extra_args,
        ]
        with open(folder / "engine.log", "wb") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, env=environment
            )
        self._deadline = time.monotonic() + self.start_timeout_s
        self._endpoint = None
        self._failure = None

    def endpoint(self) -> Endpoint | None:
        if self._endpoint is None and self._process is not None and self._folder is not None:
            ready = Path(self._folder.name) / "ready.json"
            if ready.exists():
                address = json.loads(ready.read_text())
                self._endpoint = Endpoint(str(address["host"]), int(address["port"]), self._token)
        return self._endpoint

    def failure(self) -> str | None:
        if self._failure is not None:
            return self._failure
        if self._process is None:
            return None
        code = self._process.poll()
        if code is not None:
            self._failure = f"the engine process ended (exit code {code}).{self._log_tail()}"
        elif self._endpoint is None and time.monotonic() > self._deadline:
            self._failure = f"the engine did not start within {self.start_timeout_s:.0f} s.{self._log_tail()}"
        return self._failure

    def stop(self) -> None:
        """End the engine; returns at once (closing its input makes it exit, terminate makes sure)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            if process.stdin is not None:
                process.stdin.close()
            process.terminate()
        self._endpoint = None

    def _log_tail(self) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return ""
        lines = path.read_text(errors="replace").strip().splitlines()[-_LOG_TAIL_LINES:]
        return ("\n" + "\n".join(lines)) if lines else ""
