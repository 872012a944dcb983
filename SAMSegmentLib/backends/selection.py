"""Choose the inference backend of a loaded model: torch, or ONNX Runtime when it is faster."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from ..errors import ModelUnavailableError
from ..models.base import PromptableModel

logger = logging.getLogger(__name__)

BACKEND_CHOICES = ("auto", "torch", "onnxruntime")


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def open_backend(model: PromptableModel, backend: str = "auto", graph_root: Path | None = None) -> PromptableModel:
    """``model`` itself ("torch"), or wrapped to run in ONNX Runtime ("onnxruntime").

    "auto" picks ONNX Runtime when it is installed and can use the model's device: on the
    CPU it roughly halves the encoder time. On a GPU without the ``onnxruntime-gpu``
    build, and on Apple MPS, torch on the GPU beats ONNX Runtime on the CPU, so "auto"
    keeps torch there and logs why; likewise when the CUDA provider is installed but cannot
    start (missing CUDA libraries). The first use of a model exports its graphs (see
    ``OnnxPromptableModel``); if that fails, "auto" falls back to torch with a warning.
    """
    if backend not in BACKEND_CHOICES:
        raise ValueError(f"Unknown backend '{backend}'. Choose one of: {', '.join(BACKEND_CHOICES)}.")
    if backend == "torch":
        return model
    if not onnxruntime_available():
        if backend == "onnxruntime":
            raise ModelUnavailableError(
                "The ONNX Runtime backend needs the Python package 'onnxruntime' (or 'onnxruntime-gpu'). "
                "Install it with: pip install onnxruntime"
            )
        logger.info("onnxruntime is not installed; %s runs in torch.", model.spec.name)
        return model
    from .onnx_model import OnnxPromptableModel
    from .runtime import GPU_PACKAGE_HINT, cuda_provider_available

    if backend == "auto" and model.device.type != "cpu":
        if model.device.type != "cuda" or not cuda_provider_available():
            logger.warning(
                "%s runs in torch on %s: this onnxruntime cannot use that device (for NVIDIA GPUs: %s).",
                model.spec.name,
                model.device,
                GPU_PACKAGE_HINT,
            )
            return model
    if backend == "onnxruntime":
        return OnnxPromptableModel(model, graph_root)
    try:
        onnx_model = OnnxPromptableModel(model, graph_root)
    except Exception as error:  # noqa: BLE001 - export and session errors vary by model, torch and onnxruntime version
        logger.warning("ONNX Runtime cannot run %s (%s); using torch.", model.spec.name, error)
        return model
    if onnx_model.execution_device.type != model.device.type:
        logger.warning("ONNX Runtime would run %s on the CPU, not on %s; using torch.", model.spec.name, model.device)
        return model
    return onnx_model
