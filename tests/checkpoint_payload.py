"""A checkpoint of random bytes, a model spec for it, a store with small chunks and a loopback
server class, shared by the checkpoint tests. No tests here."""

from __future__ import annotations

import dataclasses
import hashlib
import random
import sys
from http.server import ThreadingHTTPServer
from pathlib import Path

from SAMSegmentLib.checkpoints import CheckpointStore
from SAMSegmentLib.registry import ModelSpec, get_spec


class DownloadServer(ThreadingHTTPServer):
    """A loopback HTTP server for download tests. Clients that hang up mid-reply (a cancelled,
    stalled or resumed download) are what these tests make happen, so the broken pipe or reset
    connection that follows is not printed as a server error; every other error still is."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


FILENAME = "test_ckpt.pth"
# Begins like a torch.save zip, as the download checks; the rest is random.
PAYLOAD = b"PK\x03\x04" + random.Random(1234).randbytes(300_000 - 4)


def payload_spec() -> ModelSpec:
    return dataclasses.replace(
        get_spec("sam_vit_b"),
        name="test_model",
        filename=FILENAME,
        url=f"https://weights.invalid/models/{FILENAME}",
        sha256=hashlib.sha256(PAYLOAD).hexdigest(),
        size_bytes=len(PAYLOAD),
    )


def small_chunk_store(folder: Path) -> CheckpointStore:
    store = CheckpointStore(folder)
    store.chunk_size = 16 * 1024  # many chunks, so progress and cancel have room to act
    return store


def cache_files(store: CheckpointStore) -> list[str]:
    return sorted(p.name for p in store.cache_dir.iterdir()) if store.cache_dir.exists() else []
