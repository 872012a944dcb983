"""Segment Anything (``segment_anything``) and HQ-SAM (``segment_anything_hq``)."""

from __future__ import annotations

import torch

from .base import ImageEmbedding, PromptableModel

# SAM's encoder was trained on 0-255 RGB normalised by ImageNet statistics.
_PIXEL_MEAN = (123.675, 116.28, 103.53)
_PIXEL_STD = (58.395, 57.12, 57.375)

# The features every SAM-family encoder returns and its mask decoder reads (``ImageEmbedding.features``).
IMAGE_EMBEDDINGS = "image_embeddings"


class SAMModel(PromptableModel):
    def normalise(self, image01: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(_PIXEL_MEAN, device=image01.device).view(1, 3, 1, 1)
        std = torch.tensor(_PIXEL_STD, device=image01.device).view(1, 3, 1, 1)
        rgb = image01.expand(-1, 3, -1, -1) * 255.0
        # Padding happens after normalisation, as in Sam.preprocess: padded pixels are 0.
        return (rgb - mean) / std

    def encode_tensor(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return {IMAGE_EMBEDDINGS: self.network.image_encoder(batch)}

    def run_mask_decoder(
        self, embedding: ImageEmbedding, sparse: torch.Tensor, dense: torch.Tensor, multimask: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.network.mask_decoder(**self._decoder_inputs(embedding, sparse, dense), multimask_output=multimask)

    def _decoder_inputs(self, embedding: ImageEmbedding, sparse: torch.Tensor, dense: torch.Tensor) -> dict:
        return {
            "image_embeddings": embedding.features[IMAGE_EMBEDDINGS],
            "image_pe": self.network.prompt_encoder.get_dense_pe(),
            "sparse_prompt_embeddings": sparse,
            "dense_prompt_embeddings": dense,
        }


class HQSAMModel(SAMModel):
    """HQ-SAM: the encoder also returns early-layer features that its HQ decoder fuses."""

    def encode_tensor(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        embeddings, interm = self.network.image_encoder(batch)
        return {IMAGE_EMBEDDINGS: embeddings, "interm_embeddings": interm[0]}

    def run_mask_decoder(
        self, embedding: ImageEmbedding, sparse: torch.Tensor, dense: torch.Tensor, multimask: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.network.mask_decoder(
            **self._decoder_inputs(embedding, sparse, dense),
            multimask_output=multimask,
            hq_token_only=False,
            interm_embeddings=[embedding.features["interm_embeddings"]],
        )
