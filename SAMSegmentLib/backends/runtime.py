"""ONNX Runtime sessions: which execution provider, how many threads, how memory is kept.

Every option is set on purpose for an interactive desktop program that runs torch in the
same process (the prompt encoder and the mask upsampling stay in torch):

* ``intra_op_num_threads`` = torch's intra-op thread count, by default the physical cores:
  hyper-threads share one core's vector units, so a second thread per core only adds
  contention in these convolution and matmul kernels. Following torch means one setting
  (``torch.set_num_threads``, e.g. lowered to keep a GUI responsive) governs both
  backends, and setting the number explicitly (rather than 0) keeps ONNX Runtime from
  pinning its threads to cores, which would fight torch's threads for the same cores.
* ``inter_op_num_threads`` = 1 with sequential execution: the graphs are chains of
  operators, so a second pool would only compete with the first.
* graph optimisation ``ORT_ENABLE_ALL``: operator fusion (GELU, LayerNorm, MatMul with
  scaling and transposes, Conv with activations) and the blocked NCHWc convolution layout.
* ``allow_spinning`` = 0 (intra and inter op): idle ONNX Runtime workers otherwise
  busy-wait after every run, stealing the cores from the torch work that follows (the torch
  LiteMedSAM decoder went from 0.11 to 0.17 s per prompt) and from Slicer's GUI thread.
  Waking the sleeping threads between operators costs ~5-8% of an encoder call (LiteMedSAM
  0.68 -> 0.75 s on 2 cores); one thread instead of two took 1.25 s.
* CPU memory arena on, memory pattern off: the arena hands the same blocks back on every
  encoder call instead of allocating and page-faulting the activations each time (without
  it LiteMedSAM's encoder ran ~10% slower); the memory pattern pre-plans one more block
  for all activations and kept another ~290 MB resident for LiteMedSAM with no
  measurable speed gain.
* CUDA: ``arena_extend_strategy=kSameAsRequested`` grows the GPU arena by what a run
  needs instead of doubling it, so the model does not reserve memory that Slicer's
  renderer on the same GPU may need.
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort
import torch

logger = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
GPU_PACKAGE_HINT = "pip uninstall onnxruntime && pip install onnxruntime-gpu"


def session_options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.enable_cpu_mem_arena = True
    options.enable_mem_pattern = False
    options.log_severity_level = 3  # errors only: provider problems are reported by this module
    return options


def cuda_provider_available() -> bool:
    return CUDA_PROVIDER in ort.get_available_providers()


def providers_for(device: torch.device) -> list[str | tuple[str, dict[str, str]]]:
    """Execution providers for a torch device: CUDA (then CPU for unsupported operators) or CPU.

    A CUDA device without the CUDA provider runs on the CPU, and says so.
    """
    if device.type != "cuda":
        if device.type != "cpu":
            logger.warning("ONNX Runtime has no %s provider here; it runs on the CPU.", device.type.upper())
        return [CPU_PROVIDER]
    if not cuda_provider_available():
        logger.warning(
            "The GPU was requested but this onnxruntime has no CUDAExecutionProvider (available: %s); "
            "ONNX Runtime runs on the CPU. Install the GPU build: %s",
            ", ".join(ort.get_available_providers()),
            GPU_PACKAGE_HINT,
        )
        return [CPU_PROVIDER]
    cuda_options = {"device_id": str(device.index or 0), "arena_extend_strategy": "kSameAsRequested"}
    return [(CUDA_PROVIDER, cuda_options), CPU_PROVIDER]


def create_session(path: Path, device: torch.device) -> ort.InferenceSession:
    """A session for the graph at ``path`` on ``device``; warns if the GPU could not be used."""
    providers = providers_for(device)
    session = ort.InferenceSession(str(path), session_options(), providers=providers)
    wanted = providers[0][0] if isinstance(providers[0], tuple) else providers[0]
    if wanted not in session.get_providers():
        # ONNX Runtime falls back to the CPU by itself when the CUDA libraries fail to load.
        logger.warning(
            "ONNX Runtime could not start %s for %s (CUDA or cuDNN libraries missing?); it runs on the CPU.",
            wanted,
            path.parent.name,
        )
    return session


def session_device(session: ort.InferenceSession, requested: torch.device) -> torch.device:
    """Where the session's inputs and outputs live: the GPU if its CUDA provider is active."""
    if CUDA_PROVIDER in session.get_providers():
        return torch.device("cuda", requested.index or 0)
    return torch.device("cpu")
