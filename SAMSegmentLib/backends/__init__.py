"""Inference backends: a loaded model runs in torch or, wrapped, in ONNX Runtime.

``OnnxPromptableModel`` (in ``onnx_model``) imports onnxruntime; import it from there so
that this package stays importable without onnxruntime.
"""

from .selection import BACKEND_CHOICES, onnxruntime_available, open_backend

__all__ = ["BACKEND_CHOICES", "onnxruntime_available", "open_backend"]
