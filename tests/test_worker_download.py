"""Checkpoint downloads on the inference worker: progress messages, cancel, and the embedded model."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from test_worker_doubles import answer_to

from SAMSegmentLib.checkpoints import BASE_URL_ENV, CheckpointStore
from SAMSegmentLib.registry import MODELS, ModelSpec, get_spec
from SAMSegmentLib.worker import Download, InferenceWorker, MessageKind, WorkerSettings

MEBIBYTE = 1 << 20
# Three of the store's one-MiB reads, beginning like a torch.save zip as the download checks.
PAYLOAD = b"PK\x03\x04" + (bytes(range(256)) * (3 * MEBIBYTE // 256))[4:]


class SlowFileHandler(BaseHTTPRequestHandler):
    """Serves PAYLOAD a mebibyte at a time, pausing after each as a slow connection would."""

    pause_s = 0.0

    def do_GET(self) -> None:  # http.server's naming
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        for start in range(0, len(PAYLOAD), MEBIBYTE):
            self.wfile.write(PAYLOAD[start : start + MEBIBYTE])
            self.wfile.flush()
            time.sleep(self.pause_s)

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass


@pytest.fixture
def served_spec(monkeypatch) -> Iterator[ModelSpec]:
    """A registered model whose checkpoint is PAYLOAD on a loopback server."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowFileHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    spec = dataclasses.replace(
        get_spec("sam_vit_b"),
        name="worker_download_test",
        filename="worker_download_test.pth",
        url=f"http://127.0.0.1:{server.server_port}/worker_download_test.pth",
        sha256=hashlib.sha256(PAYLOAD).hexdigest(),
        size_bytes=len(PAYLOAD),
    )
    monkeypatch.setitem(MODELS, spec.name, spec)
    monkeypatch.delenv(BASE_URL_ENV, raising=False)
    yield spec
    server.shutdown()
    server.server_close()


def test_a_download_reports_progress_and_ends_with_the_verified_file(served_spec, tmp_path, monkeypatch):
    monkeypatch.setattr(SlowFileHandler, "pause_s", 0.0)
    with InferenceWorker(WorkerSettings(checkpoint_dir=tmp_path)) as worker:
        messages = worker.wait(worker.submit(Download(served_spec.name)), timeout=60)
    progress = [m.value for m in messages if m.kind is MessageKind.PROGRESS]
    assert progress[0] == (0, len(PAYLOAD)) and progress[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)
    assert messages[-1].kind is MessageKind.RESULT
    assert messages[-1].value.read_bytes() == PAYLOAD


def test_cancel_stops_a_download_and_keeps_what_arrived_for_resuming(served_spec, tmp_path, monkeypatch):
    monkeypatch.setattr(SlowFileHandler, "pause_s", 0.5)
    with InferenceWorker(WorkerSettings(checkpoint_dir=tmp_path)) as worker:
        request_id = worker.submit(Download(served_spec.name))
        deadline = time.monotonic() + 60
        messages = []
        while not any(m.kind is MessageKind.PROGRESS and m.value[0] > 0 for m in messages):
            assert time.monotonic() < deadline
            time.sleep(0.01)
            messages += worker.poll()
        worker.cancel(request_id)
        messages += worker.wait(request_id, timeout=60)
    last = messages[-1]
    assert last.request_id == request_id and last.kind is MessageKind.CANCELLED
    assert "cancelled" in last.text and last.value is None
    store = CheckpointStore(tmp_path)
    assert not store.cached_path(served_spec).exists()
    assert 0 < store.partial_path(served_spec).stat().st_size < len(PAYLOAD)


def test_downloading_the_embedded_model_answers_with_its_packaged_file(tmp_path):
    with InferenceWorker(WorkerSettings(checkpoint_dir=tmp_path)) as worker:
        answer = answer_to(worker, Download("litemedsam"))
    assert answer.kind is MessageKind.RESULT and answer.value.stat().st_size == get_spec("litemedsam").size_bytes
