"""Guarantees about the ONNX graph cache: killed exports leave nothing for good, and it stays bounded.

Each test's docstring states one guarantee; the models are tiny random SAMs.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime")

from SAMSegmentLib.backends import export
from SAMSegmentLib.backends.onnx_model import OnnxPromptableModel
from SAMSegmentLib.models import wrap_network
from SAMSegmentLib.models.base import PromptableModel

TESTS = Path(__file__).resolve().parents[1]

# A process that dies (as from kill -9) half way through writing its first graph.
_KILLED_EXPORT = textwrap.dedent(
    """
    import os, sys
    import torch
    sys.path.insert(0, sys.argv[2])
    from tiny_models import tiny_sam
    from SAMSegmentLib.backends.onnx_model import OnnxPromptableModel

    def die_half_way(module, args, path, **kwargs):
        with open(path, "wb") as stream:
            stream.write(b"half a graph")
        os._exit(9)

    torch.onnx.export = die_half_way
    OnnxPromptableModel(tiny_sam(), sys.argv[1])
    """
)


def temporaries(root: Path) -> list[Path]:
    return [path for path in root.glob("*/.*") if path.is_dir()]


@pytest.mark.slow  # exports in a process and kills it
def test_a_killed_export_leaves_no_temporary_folder_once_the_cache_is_opened_again(tiny_sam_model, tmp_path):
    """An export killed half way leaves a hidden temporary folder; the next process to open the cache
    removes it (its owner is gone) and exports the graph properly."""
    killed = subprocess.run([sys.executable, "-c", _KILLED_EXPORT, str(tmp_path), str(TESTS)], check=False)
    assert killed.returncode == 9
    [left] = temporaries(tmp_path)
    assert (left / export.GRAPH_FILE).read_bytes() == b"half a graph"
    model = OnnxPromptableModel(tiny_sam_model, tmp_path)
    assert temporaries(tmp_path) == []
    assert export.graph_path(model.graph_folder, "encoder").is_file()


def test_a_running_export_keeps_its_temporary_folder_until_it_is_a_day_old(tiny_sam_model, tmp_path):
    """Another live process's export in progress is left alone; a temporary untouched for over a day
    is removed even if its pid is alive (a reused pid, or another machine sharing the cache)."""
    folder = export.open_graph_cache(tmp_path, tiny_sam_model)
    running = folder / f".encoder-{os.getpid()}-abc123"
    forgotten = folder / f".decoder-{os.getpid()}-def456"
    for temporary in (running, forgotten):
        temporary.mkdir()
        (temporary / export.GRAPH_FILE).write_bytes(b"part")
    two_days_ago = time.time() - 2 * 24 * 3600
    for path in (forgotten / export.GRAPH_FILE, forgotten):
        os.utime(path, (two_days_ago, two_days_ago))
    export.open_graph_cache(tmp_path, tiny_sam_model)
    assert temporaries(tmp_path) == [running]


def _variant(model: PromptableModel, number: int) -> PromptableModel:
    """``model`` with other weights, as a fine-tuned model or another checkpoint is."""
    network = copy.deepcopy(model.network)
    with torch.no_grad():
        network.mask_decoder.iou_token.weight.add_(float(number))
    return wrap_network(model.spec, network, torch.device("cpu"))


def test_the_graph_cache_keeps_only_the_most_recently_used_models(tiny_sam_model, tmp_path):
    """Every distinct weight file gets its own graph folder, but only the ``KEPT_MODELS`` most recently
    used stay: opening one more removes the folder used longest ago, never the one being opened."""
    models = [_variant(tiny_sam_model, number) for number in range(export.KEPT_MODELS + 1)]
    folders = []
    for model in models[:-1]:
        folders.append(export.open_graph_cache(tmp_path, model))
        (folders[-1] / "encoder").mkdir()  # stands in for its graphs
        time.sleep(0.01)  # distinct use times on coarse file-system clocks
    export.open_graph_cache(tmp_path, models[0])  # used again: now the most recent
    time.sleep(0.01)
    folders.append(export.open_graph_cache(tmp_path, models[-1]))
    kept = sorted(path for path in tmp_path.iterdir())
    assert len(kept) == export.KEPT_MODELS
    assert kept == sorted([folders[0], *folders[2:]])  # the second model, used longest ago, went
    assert (folders[0] / "encoder").is_dir()
