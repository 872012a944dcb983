"""Receiving a checkpoint over HTTP for ``checkpoints.CheckpointStore.download``: a reader thread,
Cancel and the stall clock, and the checks that refuse a reply that cannot be the checkpoint."""

from __future__ import annotations

import http.client
import queue
import threading
import time
import urllib.request
from pathlib import Path

from .cancel import CancelToken
from .errors import CancelledError, CheckpointError
from .registry import ModelSpec

# How long the downloading thread waits for the reader before it checks Cancel and the stall
# clock again: Cancel takes effect within about this long.
POLL_S = 0.1
# Pieces the reader may hold ahead of the writer: reading never runs far ahead of the disk.
QUEUE_PIECES = 16
# Enough leading bytes to recognise a checkpoint: safetensors has 8 bytes of header length, then "{".
MAGIC_BYTES = 9
# Media types of documents (error pages, JSON errors), which no checkpoint is served as.
DOCUMENT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml")


class WrongFileError(CheckpointError):
    """The server is sending something other than the expected file; drop the .part."""


class Reader:
    """Opens the request and reads the reply on a daemon thread, handing the response, then each
    piece (b"" at the end), or the error it met, over a queue. The downloading thread waits on the
    queue a poll at a time, so it never sits in a socket read it cannot leave."""

    def __init__(self, request: urllib.request.Request, chunk_size: int, timeout_s: float) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=QUEUE_PIECES)
        self._abandoned = threading.Event()
        threading.Thread(
            target=self._run, args=(request, chunk_size, timeout_s), name="checkpoint-download", daemon=True
        ).start()

    def _run(self, request: urllib.request.Request, chunk_size: int, timeout_s: float) -> None:
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                if not self._hand_over(response):
                    return
                while True:
                    # read1 returns what has arrived, so a slow server's bytes count as soon as they come.
                    chunk = response.read1(chunk_size)
                    if not self._hand_over(chunk) or not chunk:
                        return
        except Exception as error:  # noqa: BLE001 - raised again in the downloading thread
            self._hand_over(error)

    def _hand_over(self, item: object) -> bool:
        """Queue ``item``; False once the downloading thread has gone (then nobody reads it)."""
        while not self._abandoned.is_set():
            try:
                self._queue.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def get(self) -> object | None:
        """The next item, or None when none came within a poll."""
        try:
            return self._queue.get(timeout=POLL_S)
        except queue.Empty:
            return None

    def abandon(self) -> None:
        """Stop handing over; the thread ends after its current read (at worst the socket timeout)."""
        self._abandoned.set()


class Receiving:
    """One download's progress: what the reader handed over, checked against Cancel and the stall clock."""

    def __init__(
        self,
        spec: ModelSpec,
        reader: Reader,
        cancel: CancelToken | None,
        done: int,
        stall_bytes: int,
        stall_seconds: float,
    ) -> None:
        """A stall is less than ``stall_bytes`` arriving in ``stall_seconds``."""
        self.spec, self.reader, self.cancel = spec, reader, cancel
        self.stall_bytes, self.stall_seconds = stall_bytes, stall_seconds
        self.done = done  # bytes of the checkpoint in the .part
        self._mark = done
        self._deadline = time.monotonic() + stall_seconds

    def restart(self) -> None:
        """The server sends the file from its first byte (it ignored the resume request)."""
        self.done = self._mark = 0

    def next(self) -> object:
        """The reader's next item; raises its error, CancelledError, or a CheckpointError on a stall."""
        while True:
            if self.cancel is not None and self.cancel.cancelled:
                raise CancelledError(
                    f"Download of {self.spec.name} cancelled at {self.done} of {self.spec.size_bytes} bytes; "
                    "downloading it again resumes from there."
                )
            if self.done - self._mark >= self.stall_bytes:
                self._mark, self._deadline = self.done, time.monotonic() + self.stall_seconds
            if time.monotonic() > self._deadline:
                raise CheckpointError(
                    f"The download of {self.spec.name} stalled: less than {self.stall_bytes // 1024} KiB "
                    f"arrived in {self.stall_seconds:g} s (at {self.done} of {self.spec.size_bytes} bytes). "
                    "Run it again to resume, try another mirror, or import the file."
                )
            item = self.reader.get()
            if isinstance(item, BaseException):
                raise item
            if item is not None:
                return item


def check_offered(spec: ModelSpec, source: str, response: http.client.HTTPResponse, offset: int) -> None:
    """Refuse a reply that cannot be the checkpoint before any of it is kept (an HTML error page,
    another model): by its media type, its length, or the total size in its Content-Range."""
    media_type = response.headers.get_content_type().lower() if response.headers.get("Content-Type") else ""
    if media_type.startswith(DOCUMENT_TYPES):
        raise WrongFileError(
            f"{source} answered with a document ({media_type}), not the checkpoint of {spec.name}: "
            "probably an error or sign-in page. Check the download address or mirror."
        )
    sizes = []
    length = response.headers.get("Content-Length")
    if length is not None and length.isdigit():
        sizes.append(offset + int(length))
    whole = response.headers.get("Content-Range", "").rpartition("/")[2]
    if response.status == 206 and whole.isdigit():
        sizes.append(int(whole))
    for size in sizes:
        if size != spec.size_bytes:
            raise WrongFileError(
                f"{source} offers {size} bytes; the checkpoint of {spec.name} "
                f"({spec.filename}) has {spec.size_bytes}. Check the download address or mirror."
            )


def looks_like_checkpoint(head: bytes) -> bool:
    """Whether ``head`` (the first bytes) can begin a checkpoint: a zip (torch.save), a pickle of
    protocol 2 or later (older torch.save), or safetensors (header length, then a JSON object)."""
    if head.startswith(b"PK\x03\x04"):
        return True
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    return len(head) >= MAGIC_BYTES and head[8:9] == b"{" and int.from_bytes(head[:8], "little") > 0


def starts_like_checkpoint(path: Path) -> bool:
    with open(path, "rb") as stream:
        return looks_like_checkpoint(stream.read(MAGIC_BYTES))


def resumes_at(response: http.client.HTTPResponse, offset: int) -> bool:
    """Whether a response to a Range request really continues at ``offset``."""
    if response.status != 206:
        return False
    content_range = response.headers.get("Content-Range", "")
    try:
        start = int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return False
    return start == offset
