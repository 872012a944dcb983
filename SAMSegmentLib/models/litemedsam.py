"""LiteMedSAM: TinyViT encoder with SAM's prompt encoder and mask decoder, 256x256 input."""

from __future__ import annotations

import torch

from .base import ImageEmbedding, PromptableModel


class LiteMedSAMModel(PromptableModel):
    def normalise(self, image01: torch.Tensor) -> torch.Tensor:
        # LiteMedSAM was trained on images scaled to [0, 1] with no mean/std normalisation.
        return image01

    def encode_tensor(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"image_embeddings": self.network.image_encoder(batch)}

    def run_mask_decoder(
        self, embedding: ImageEmbedding, sparse: torch.Tensor, dense: torch.Tensor, multimask: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.network.mask_decoder(
            image_embeddings=embedding.features["image_embeddings"],
            image_pe=self.network.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )
