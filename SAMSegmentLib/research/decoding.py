"""Decode many prompts against one slice embedding in a single mask-decoder call.

``PromptableModel.decode`` serves one interactive prompt set under inference mode; automatic
segmentation decodes hundreds of grid prompts per slice and fine-tuning needs gradients, so
both go through this batched form instead. Each prompt is either one positive point or one box.

Batches run in the torch mask decoder even when the model runs in ONNX Runtime: the exported
decoder takes one prompt set, and training needs autograd. The ONNX model's encoder features
have the torch encoder's names and shapes, so its embeddings serve both decoders.
"""

from __future__ import annotations

import numpy as np
import torch

from ..models.base import ImageEmbedding, PromptableModel


def decode_batch(
    model: PromptableModel,
    embedding: ImageEmbedding,
    points_xy: np.ndarray | None = None,
    boxes_xyxy: np.ndarray | None = None,
    multimask: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode B single-point or B box prompts (slice pixel coordinates) on one embedding.

    Returns (B x M x L x L low-resolution logits, B x M predicted IoU). Gradients flow into the
    mask decoder; wrap the call in ``torch.inference_mode()`` when not training.
    """
    if (points_xy is None) == (boxes_xyxy is None):
        raise ValueError("Give either points or boxes, not both or neither.")
    model = torch_model_of(model)
    network = model.network
    points = None
    boxes = None
    if points_xy is not None:
        xy = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
        coords = torch.as_tensor(model.to_model_coords(xy, embedding.original_hw), dtype=torch.float32)
        labels = torch.ones(len(xy), 1, dtype=torch.int64)
        points = (coords[:, None, :].to(model.device), labels.to(model.device))
    else:
        corners = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 2)
        scaled = model.to_model_coords(corners, embedding.original_hw).reshape(-1, 4)
        boxes = torch.as_tensor(scaled, dtype=torch.float32, device=model.device)
    sparse, dense = network.prompt_encoder(points=points, boxes=boxes, masks=None)
    # The decoders repeat the single image embedding once per prompt in the batch.
    return model.run_mask_decoder(embedding, sparse, dense, multimask)


def torch_model_of(model: PromptableModel) -> PromptableModel:
    """The torch model behind ``model``: an ONNX Runtime model (``backends.onnx_model``) keeps the
    torch model it was exported from as ``torch_model``; a torch model is its own."""
    return getattr(model, "torch_model", model)
