"""A checkpoint of random bytes, a model spec for it and a store with small chunks, shared by
the checkpoint tests. No tests here."""

from __future__ import annotations

import dataclasses
import hashlib
import random
from pathlib import Path

from SAMSegmentLib.checkpoints import CheckpointStore
from SAMSegmentLib.registry import ModelSpec, get_spec

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
