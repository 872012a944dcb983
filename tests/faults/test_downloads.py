"""Guarantees about checkpoint downloads from a mirror that misbehaves: it trickles, stalls, or
answers with a web page. Each test's docstring states one guarantee; the mirror is a loopback
HTTP server."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from checkpoint_payload import FILENAME, PAYLOAD, DownloadServer, cache_files, payload_spec, small_chunk_store

from SAMSegmentLib.cancel import CancelToken
from SAMSegmentLib.checkpoints import CheckpointStore
from SAMSegmentLib.errors import CancelledError, CheckpointError
from SAMSegmentLib.registry import MODELS, ModelSpec
from SAMSegmentLib.worker import Download, InferenceWorker, MessageKind, WorkerSettings

HTML = b"<!DOCTYPE html><html><body>Rate limit exceeded. Sign in to continue.</body></html>"
# Cancel and a stall must end a download within this long (the guarantee is "within a second").
PROMPT_S = 1.0

pytestmark = pytest.mark.usefixtures("no_proxy")


class Mirror:
    """How the loopback mirror behaves."""

    def __init__(self) -> None:
        self.mode = "good"  # good | trickle | stall | silent | html | html-as-binary | wrong-total
        self.stall_after = len(PAYLOAD) // 3  # bytes sent before a stall
        self.release = threading.Event()  # ends every stall, so the server can shut down
        self.ranges: list[str | None] = []


class MirrorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: closing marks the end

    def do_GET(self) -> None:  # http.server's naming
        mirror: Mirror = self.server.mirror  # type: ignore[attr-defined]
        mirror.ranges.append(self.headers.get("Range"))
        if mirror.mode == "silent":  # accepts the connection, never answers
            mirror.release.wait()
            return
        if mirror.mode in ("html", "html-as-binary"):  # a 200 without Content-Length
            self.send_response(200)
            self.send_header("Content-Type", "text/html" if mirror.mode == "html" else "application/octet-stream")
            self.end_headers()
            self.wfile.write(HTML)
            return
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        if start:
            self.send_response(206)
            total = len(PAYLOAD) * (2 if mirror.mode == "wrong-total" else 1)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{total}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(PAYLOAD) - start))
        self.end_headers()
        body = PAYLOAD[start:]
        if mirror.mode == "trickle":  # a byte every 10 ms: progress, but hours for a real checkpoint
            for offset in range(len(body)):
                if mirror.release.wait(0.01):
                    return
                self.wfile.write(body[offset : offset + 1])
                self.wfile.flush()
        elif mirror.mode == "stall":
            self.wfile.write(body[: mirror.stall_after])
            self.wfile.flush()
            mirror.release.wait()
        else:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass


@pytest.fixture
def mirror() -> Iterator[tuple[Mirror, str]]:
    httpd = DownloadServer(("127.0.0.1", 0), MirrorHandler)
    httpd.mirror = Mirror()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.mirror, f"http://127.0.0.1:{httpd.server_address[1]}/files/{FILENAME}"  # type: ignore[attr-defined]
    httpd.mirror.release.set()  # type: ignore[attr-defined]
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def spec() -> ModelSpec:
    return payload_spec()


@pytest.fixture
def store(tmp_path: Path) -> CheckpointStore:
    store = small_chunk_store(tmp_path / "cache")
    store.stall_seconds = 0.5  # the real limit is 30 s; the rule is the same
    return store


def _cancel_after(seconds: float) -> tuple[list[float], CancelToken]:
    """A cancel token set ``seconds`` from now by another thread; the list gets the time it was set."""
    cancelled_at: list[float] = []
    token = CancelToken()

    def cancel() -> None:
        cancelled_at.append(time.monotonic())
        token.cancel()

    timer = threading.Timer(seconds, cancel)
    timer.daemon = True
    timer.start()
    return cancelled_at, token


# -- stalls and cancel ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["stall", "silent"])
def test_cancel_ends_a_download_stalled_in_a_read_within_a_second(
    mirror: tuple[Mirror, str], store: CheckpointStore, spec: ModelSpec, mode: str
) -> None:
    """Cancel ends a download within a second even while the server sends nothing, after part of the
    file or before any reply; what arrived stays in the .part for a resume."""
    server, url = mirror
    server.mode = mode
    store.stall_seconds = 60.0  # only Cancel can end it
    cancelled_at, cancel = _cancel_after(0.5)
    with pytest.raises(CancelledError, match="cancelled"):
        store.download(spec, cancel=cancel, url=url)
    assert time.monotonic() - cancelled_at[0] < PROMPT_S
    part = store.partial_path(spec)
    assert part.stat().st_size == server.stall_after if mode == "stall" else not part.exists()


def test_a_stalled_download_ends_with_an_error_and_resumes_later(
    mirror: tuple[Mirror, str], store: CheckpointStore, spec: ModelSpec
) -> None:
    """A server that stops sending ends the download after the stall limit with an error that says
    so; the bytes that arrived are kept and the next download resumes from them."""
    server, url = mirror
    server.mode = "stall"
    started = time.monotonic()
    with pytest.raises(CheckpointError, match="stalled"):
        store.download(spec, url=url)
    assert time.monotonic() - started < store.stall_seconds + PROMPT_S
    assert store.partial_path(spec).stat().st_size == server.stall_after
    server.mode = "good"
    assert store.download(spec, url=url).read_bytes() == PAYLOAD
    assert server.ranges[-1] == f"bytes={server.stall_after}-"


def test_a_trickling_mirror_counts_as_stalled(
    mirror: tuple[Mirror, str], store: CheckpointStore, spec: ModelSpec
) -> None:
    """A server that keeps sending a byte now and then (progress, but far too slow to ever finish)
    hits the stall limit too: less than stall_bytes per stall_seconds is a stall, so the CLI never
    hangs on such a mirror."""
    server, url = mirror
    server.mode = "trickle"
    started = time.monotonic()
    with pytest.raises(CheckpointError, match="stalled"):
        store.download(spec, url=url)
    assert time.monotonic() - started < store.stall_seconds + PROMPT_S
    assert 0 < store.partial_path(spec).stat().st_size < store.stall_bytes  # kept for a resume


def test_shutting_down_the_worker_during_a_stalled_download_is_prompt(
    mirror: tuple[Mirror, str], spec: ModelSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopping the inference worker while its download waits on a silent server cancels the
    download and returns True within a second or two (it returned False after 30 s before)."""
    server, url = mirror
    server.mode = "stall"
    registered = dataclasses.replace(spec, url=url)
    monkeypatch.setitem(MODELS, registered.name, registered)
    worker = InferenceWorker(WorkerSettings(checkpoint_dir=tmp_path))
    worker.submit(Download(registered.name))
    deadline = time.monotonic() + 10
    while not any(m.kind is MessageKind.PROGRESS and m.value[0] > 0 for m in worker.poll()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    started = time.monotonic()
    assert worker.shutdown(timeout=5)
    assert time.monotonic() - started < 2 * PROMPT_S


# -- replies that cannot be the checkpoint -------------------------------------------


@pytest.mark.parametrize("mode", ["html", "html-as-binary"])
def test_a_web_page_served_with_200_is_refused_and_never_resumed_from(
    mirror: tuple[Mirror, str], store: CheckpointStore, spec: ModelSpec, mode: str
) -> None:
    """An error or sign-in page answered with 200 and no Content-Length is refused (by its media
    type, or by first bytes that begin no checkpoint when it claims to be binary); no .part is kept,
    so the next download starts from the first byte instead of resuming after the page."""
    server, url = mirror
    server.mode = mode
    with pytest.raises(CheckpointError, match=r"document|does not begin like a checkpoint"):
        store.download(spec, url=url)
    assert cache_files(store) == []
    server.mode = "good"
    assert store.download(spec, url=url).read_bytes() == PAYLOAD
    assert server.ranges[-1] is None


def test_a_part_that_is_not_the_start_of_a_checkpoint_is_not_resumed(
    mirror: tuple[Mirror, str], store: CheckpointStore, spec: ModelSpec
) -> None:
    """A .part left by an older version that kept an HTML page is discarded, not resumed from."""
    server, url = mirror
    store.cache_dir.mkdir(parents=True)
    store.partial_path(spec).write_bytes(HTML)
    assert store.download(spec, url=url).read_bytes() == PAYLOAD
    assert server.ranges == [None]


def test_a_resume_reply_for_a_file_of_another_size_is_refused(
    mirror: tuple[Mirror, str], store: CheckpointStore, spec: ModelSpec
) -> None:
    """A resumed reply whose Content-Range names a total size other than the registry's is refused:
    its bytes belong to another file."""
    server, url = mirror
    store.cache_dir.mkdir(parents=True)
    store.partial_path(spec).write_bytes(PAYLOAD[:1000])
    server.mode = "wrong-total"
    with pytest.raises(CheckpointError, match=f"offers {2 * len(PAYLOAD)} bytes"):
        store.download(spec, url=url)
    assert cache_files(store) == []
