"""Export a model's graphs to ONNX once and keep them in a cache folder.

A cached graph is found again only for the same weights, model, opset, torch and
onnxruntime versions and export code; anything else gets a new folder. Each graph is
exported into a temporary folder beside its final one and renamed into place when
complete (graphs over 2 GB come with external weight files), so a crash or a full disk
never leaves a half graph under the final name.

Opening the cache cleans it: temporaries of exports that were killed are removed, and only
the graphs of the ``KEPT_MODELS`` most recently used models stay (each distinct weight file,
fine-tuned ones included, would otherwise add 45 MB to 2.5 GB for good).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import onnxruntime as ort
import torch

from ..checkpoints import CheckpointStore
from ..models.base import PromptableModel
from .graphs import GraphDefinition

logger = logging.getLogger(__name__)

OPSET = 17
# Bump when graphs.py changes what a graph computes, so older cached graphs are not reused.
EXPORT_FORMAT = 2  # 2: SAM and LiteMedSAM decoders exported factored
GRAPH_FILE = "model.onnx"
# Models whose graphs are kept. By count, not bytes: a byte budget would evict SAM ViT-H (2.5 GB,
# minutes to export again) first; four covers switching between a few models and fine-tunes,
# and bounds the cache to four times the largest model's graphs.
KEPT_MODELS = 4
# An export's temporary folder whose owner is alive is still stale after this long: the pid may
# have been reused, or the export runs on another machine sharing the cache (exports take minutes).
STALE_AFTER_S = 24 * 3600


def default_graph_root(store: CheckpointStore | None = None) -> Path:
    return (store or CheckpointStore()).cache_dir / "onnx"


def weights_digest(network: torch.nn.Module) -> str:
    """SHA-256 over every parameter and buffer: names, types, shapes and bytes.

    It identifies the weights whatever file (or random initialisation) they came from.
    """
    digest = hashlib.sha256()
    for name, tensor in network.state_dict().items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def model_folder(root: Path, model: PromptableModel) -> Path:
    """The cache folder for this model's graphs; its name says what they were made from."""
    identity = {
        "model": model.spec.name,
        "adapter": type(model).__name__,
        "input_size": model.input_size,
        "weights": weights_digest(model.network),
        "opset": OPSET,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "format": EXPORT_FORMAT,
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return Path(root) / f"{model.spec.name}-{key[:24]}"


def open_graph_cache(root: Path, model: PromptableModel, keep: int = KEPT_MODELS) -> Path:
    """The model's graph folder, marked as just used, in a cache cleaned of killed exports'
    temporaries and of all but the ``keep`` most recently used models' graphs."""
    folder = model_folder(root, model)
    folder.mkdir(parents=True, exist_ok=True)
    os.utime(folder)  # its modification time is its last use
    models = sorted((path for path in Path(root).iterdir() if _is_model_folder(path)), key=_mtime, reverse=True)
    for old in models[keep:]:
        if old != folder:
            logger.info("Removing the ONNX graphs of %s, not used recently", old.name)
            shutil.rmtree(old, ignore_errors=True)
    for kept in models[:keep]:
        for entry in kept.iterdir():
            if entry.name.startswith(".") and entry.is_dir() and _stale_temporary(entry):
                shutil.rmtree(entry, ignore_errors=True)
    return folder


def _is_model_folder(path: Path) -> bool:
    return path.is_dir() and not path.name.startswith(".")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # removed meanwhile by another process's clean-up
        return 0.0


def _stale_temporary(folder: Path) -> bool:
    """Whether an export's temporary folder (``.<graph>-<pid>-<random>``) was left by a killed export."""
    parts = folder.name.split("-")
    owner = int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else None
    if owner is not None and _process_gone(owner):
        return True
    newest = max([_mtime(folder), *(_mtime(path) for path in folder.iterdir())])
    return time.time() - newest > STALE_AFTER_S


def _process_gone(pid: int) -> bool:
    if os.name != "posix":  # Windows' os.kill would end the process; its age decides there
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process
        return False
    return False


def graph_path(folder: Path, name: str) -> Path:
    return folder / name / GRAPH_FILE


def ensure_graph(folder: Path, definition: GraphDefinition) -> Path:
    """The path of the cached graph, exporting it first if it is not cached yet."""
    final = graph_path(folder, definition.name)
    if final.is_file():
        return final
    folder.mkdir(parents=True, exist_ok=True)
    discard_graph(folder, definition.name)  # a folder without its graph file is of no use
    # The owner's pid in the name lets a later process see that a killed export left it behind.
    temporary = Path(tempfile.mkdtemp(prefix=f".{definition.name}-{os.getpid()}-", dir=folder))
    try:
        started = time.perf_counter()
        _export(definition, temporary / GRAPH_FILE)
        _flush_to_disk(temporary)
        try:
            os.rename(temporary, final.parent)
        except OSError:
            if not final.is_file():  # not a lost race with another process exporting the same graph
                raise
        logger.info("Exported %s to %s in %.1f s", definition.name, final, time.perf_counter() - started)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return final


def discard_graph(folder: Path, name: str) -> None:
    """Remove a graph's folder (damaged or incomplete), so that it is exported again."""
    shutil.rmtree(folder / name, ignore_errors=True)


def _flush_to_disk(folder: Path) -> None:
    # On disk before the rename, so that a power cut cannot leave an empty graph under the final name.
    for path in folder.iterdir():
        with open(path, "rb") as stream:
            os.fsync(stream.fileno())


def _export(definition: GraphDefinition, path: Path) -> None:
    with warnings.catch_warnings():
        # The tracer warns about every Python-level shape computation in upstream code; the
        # parity tests check the exported graphs against torch instead.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            definition.module.eval(),
            definition.example_inputs,
            str(path),
            dynamo=False,  # the TorchScript exporter handles these models; see the parity tests
            opset_version=OPSET,
            input_names=list(definition.input_names),
            output_names=list(definition.output_names),
            dynamic_axes=definition.dynamic_axes,
            do_constant_folding=True,
        )
