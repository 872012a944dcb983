"""CheckpointStore.download against a loopback HTTP server that speaks (or ignores) Range requests."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from checkpoint_payload import FILENAME, PAYLOAD, DownloadServer, cache_files, payload_spec, small_chunk_store

from SAMSegmentLib.cancel import CancelToken
from SAMSegmentLib.checkpoints import STATE_CACHED, STATE_NOT_DOWNLOADED, CheckpointStore
from SAMSegmentLib.errors import CancelledError, CheckpointError
from SAMSegmentLib.registry import ModelSpec

pytestmark = pytest.mark.usefixtures("no_proxy")


class Served:
    """What the test server serves, how it misbehaves, and what it saw."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.ignore_range = False
        self.cut_after: int | None = None  # declare the full length, then hang up after this many bytes
        self.serve_only: int | None = None  # honestly serve a shorter file
        self.ranges: list[str | None] = []
        self.bytes_sent = 0


class RangeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: closing marks the end

    def do_GET(self) -> None:  # http.server's naming
        served: Served = self.server.served  # type: ignore[attr-defined]
        if not self.path.endswith("/" + FILENAME):
            self.send_error(404)
            return
        range_header = self.headers.get("Range")
        served.ranges.append(range_header)
        body = served.data if served.serve_only is None else served.data[: served.serve_only]
        start = 0
        if range_header and not served.ignore_range:
            match = re.fullmatch(r"bytes=(\d+)-", range_header)
            assert match, range_header
            start = int(match[1])
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if served.cut_after is not None:
            payload = payload[: served.cut_after]
        self.wfile.write(payload)
        served.bytes_sent += len(payload)

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = DownloadServer(("127.0.0.1", 0), RangeHandler)
    httpd.served = Served(PAYLOAD)  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def served(httpd: ThreadingHTTPServer) -> Served:
    return httpd.served  # type: ignore[attr-defined]


def url_of(httpd: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}/files/{FILENAME}"


@pytest.fixture
def spec() -> ModelSpec:
    return payload_spec()


@pytest.fixture
def store(tmp_path: Path) -> CheckpointStore:
    return small_chunk_store(tmp_path / "cache")


# -- download ------------------------------------------------------------------------


def test_download_writes_verified_file_and_reports_progress(
    server: ThreadingHTTPServer, store: CheckpointStore, spec: ModelSpec
) -> None:
    calls: list[tuple[int, int]] = []
    path = store.download(spec, progress=lambda done, total: calls.append((done, total)), url=url_of(server))
    assert path == store.cache_dir / FILENAME
    assert path.read_bytes() == PAYLOAD
    assert cache_files(store) == [FILENAME]
    assert served(server).ranges == [None]
    assert calls[0] == (0, len(PAYLOAD)) and calls[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert len(calls) > 10
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert store.state(spec) == STATE_CACHED
    assert store.path_for(spec) == path


def test_download_of_a_cached_model_fetches_nothing(
    server: ThreadingHTTPServer, store: CheckpointStore, spec: ModelSpec
) -> None:
    store.download(spec, url=url_of(server))
    store.download(spec, url=url_of(server))
    assert served(server).ranges == [None]


def test_download_resumes_a_cut_download_with_a_range_request(
    server: ThreadingHTTPServer, store: CheckpointStore, spec: ModelSpec
) -> None:
    half = len(PAYLOAD) // 2
    store.cache_dir.mkdir(parents=True)
    store.partial_path(spec).write_bytes(PAYLOAD[:half])
    calls: list[tuple[int, int]] = []
    path = store.download(spec, progress=lambda done, total: calls.append((done, total)), url=url_of(server))
    assert served(server).ranges == [f"bytes={half}-"]
    assert served(server).bytes_sent == len(PAYLOAD) - half
    assert calls[0] == (half, len(PAYLOAD))
    assert path.read_bytes() == PAYLOAD
    assert cache_files(store) == [FILENAME]


def test_download_restarts_when_the_server_ignores_range(
    server: ThreadingHTTPServer, store: CheckpointStore, spec: ModelSpec
) -> None:
    served(server).ignore_range = True
    half = len(PAYLOAD) // 2
    store.cache_dir.mkdir(parents=True)
    # Begins like a checkpoint, so it is resumed from, but is not a prefix of the file: only a
    # restart from zero can end well.
    store.partial_path(spec).write_bytes(PAYLOAD[:4] + b"\0" * (half - 4))
    path = store.download(spec, url=url_of(server))
    assert served(server).ranges == [f"bytes={half}-"]
    assert served(server).bytes_sent == len(PAYLOAD)
    assert path.read_bytes() == PAYLOAD


def test_wrong_digest_leaves_nothing_in_the_cache(
    server: ThreadingHTTPServer, store: CheckpointStore, spec: ModelSpec
) -> None:
    wrong = dataclasses.replace(spec, sha256="0" * 64)
    with pytest.raises(CheckpointError) as raised:
        store.download(wrong, url=url_of(server))
    message = str(raised.value)
    assert "0" * 64 in message and hashlib.sha256(PAYLOAD).hexdigest() in message
    assert cache_files(store) == []
    assert store.state(wrong) == STATE_NOT_DOWNLOADED


def test_connection_cut_short_raises_and_the_next_try_resumes(
    server: ThreadingHTTPServer, store: CheckpointStore, spec: ModelSpec
) -> None:
    half = len(PAYLOAD) // 2
    served(server).cut_after = half
    with pytest.raises(CheckpointError, match=f"stopped at {half} of {len(PAYLOAD)} bytes"):
        store.download(spec, url=url_of(server))
    assert cache_files(store) == [FILENAME + ".part"]
    assert store.state(spec) == STATE_NOT_DOWNLOADED

    served(server).cut_after = None
    path = store.download(spec, url=url_of(server))
    assert served(server).ranges == [None, f"bytes={half}-"]
    assert path.read_bytes() == PAYLOAD


def test_server_offering_a_shorter_file_is_refused(
    server: ThreadingHTTPServer, store: CheckpointStore, spec: ModelSpec
) -> None:
    served(server).serve_only = len(PAYLOAD) - 1000
    with pytest.raises(CheckpointError, match=f"offers {len(PAYLOAD) - 1000} bytes"):
        store.download(spec, url=url_of(server))
    assert cache_files(store) == []


def test_part_longer_than_the_file_is_discarded(
    server: ThreadingHTTPServer, store: CheckpointStore, spec: ModelSpec
) -> None:
    store.cache_dir.mkdir(parents=True)
    store.partial_path(spec).write_bytes(PAYLOAD + b"tail")
    path = store.download(spec, url=url_of(server))
    assert served(server).ranges == [None]
    assert path.read_bytes() == PAYLOAD


def test_cancel_keeps_the_part_for_a_later_resume(
    server: ThreadingHTTPServer, store: CheckpointStore, spec: ModelSpec
) -> None:
    calls: list[int] = []
    cancel = CancelToken()

    def cancel_after_three(done: int, total: int, stage: str = "") -> None:
        calls.append(done)
        if len(calls) > 3:
            cancel.cancel()

    with pytest.raises(CancelledError):
        store.download(spec, progress=cancel_after_three, cancel=cancel, url=url_of(server))
    part = store.partial_path(spec)
    assert cache_files(store) == [part.name]
    assert 0 < part.stat().st_size < len(PAYLOAD)
    assert part.read_bytes() == PAYLOAD[: part.stat().st_size]

    kept = part.stat().st_size
    path = store.download(spec, url=url_of(server))
    assert served(server).ranges[-1] == f"bytes={kept}-"
    assert path.read_bytes() == PAYLOAD


def test_http_error_names_the_status(server: ThreadingHTTPServer, store: CheckpointStore, spec: ModelSpec) -> None:
    with pytest.raises(CheckpointError, match="HTTP 404"):
        store.download(spec, url=url_of(server).replace(FILENAME, "missing.pth"))
    assert not store.cached_path(spec).exists()


def test_mirror_from_the_environment_replaces_the_url_directory(
    server: ThreadingHTTPServer, store: CheckpointStore, spec: ModelSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = url_of(server).rsplit("/", 1)[0] + "/"
    monkeypatch.setenv("SAMSEGMENT_DOWNLOAD_BASE_URL", mirror)
    assert store.source_url(spec) == mirror + FILENAME
    assert store.download(spec).read_bytes() == PAYLOAD


def test_unknown_digest_is_size_checked_with_a_warning(
    server: ThreadingHTTPServer, store: CheckpointStore, spec: ModelSpec, caplog: pytest.LogCaptureFixture
) -> None:
    unknown = dataclasses.replace(spec, sha256="")
    with caplog.at_level(logging.WARNING, logger="SAMSegmentLib.checkpoints"):
        path = store.download(unknown, url=url_of(server))
    assert path.read_bytes() == PAYLOAD
    assert "No SHA-256 is known for test_model" in caplog.text


def test_non_http_address_is_refused(store: CheckpointStore, spec: ModelSpec) -> None:
    with pytest.raises(CheckpointError, match="http"):
        store.download(spec, url="file:///etc/passwd")
