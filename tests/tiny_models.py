"""The real SAM and HQ-SAM architectures at tiny sizes with random weights, for fast code-path tests.

They say nothing about accuracy: only shapes, plumbing and error handling are tested with them.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import torch

from SAMSegmentLib.models import PromptableModel, wrap_network
from SAMSegmentLib.registry import PromptKind, get_spec

TINY_INPUT = 128
_PATCH = 16


def _tiny(modeling, decoder) -> torch.nn.Module:
    torch.manual_seed(0)
    embed = TINY_INPUT // _PATCH
    encoder = modeling.ImageEncoderViT(
        depth=2,
        embed_dim=32,
        img_size=TINY_INPUT,
        mlp_ratio=2,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        num_heads=2,
        patch_size=_PATCH,
        qkv_bias=True,
        use_rel_pos=True,
        global_attn_indexes=(1,),
        window_size=4,
        out_chans=256,
    )
    prompt_encoder = modeling.PromptEncoder(
        embed_dim=256, image_embedding_size=(embed, embed), input_image_size=(TINY_INPUT, TINY_INPUT), mask_in_chans=16
    )
    return modeling.Sam(encoder, prompt_encoder, decoder).eval()


def tiny_sam() -> PromptableModel:
    from segment_anything import modeling

    decoder = modeling.MaskDecoder(
        num_multimask_outputs=3,
        transformer=modeling.TwoWayTransformer(depth=1, embedding_dim=256, mlp_dim=256, num_heads=8),
        transformer_dim=256,
    )
    spec = dataclasses.replace(get_spec("sam_vit_b"), input_size=TINY_INPUT)
    return wrap_network(spec, _tiny(modeling, decoder), torch.device("cpu"))


def tiny_hq_sam() -> PromptableModel:
    from segment_anything_hq import modeling

    decoder = modeling.MaskDecoderHQ(
        num_multimask_outputs=3,
        transformer=modeling.TwoWayTransformer(depth=1, embedding_dim=256, mlp_dim=256, num_heads=8),
        transformer_dim=256,
        vit_dim=32,
    )
    spec = dataclasses.replace(get_spec("hq_sam_vit_b"), input_size=TINY_INPUT)
    return wrap_network(spec, _tiny(modeling, decoder), torch.device("cpu"))


def zooming(model: PromptableModel) -> PromptableModel:
    """``model`` as a box-only model that zooms to the box (``ModelSpec.zoom_context``), as
    LiteMedSAM does, sharing its network."""
    spec = dataclasses.replace(
        model.spec, zoom_context=3.0, prompts=frozenset({PromptKind.BOX}), multimask=False, drawn_box_widenings=()
    )
    return wrap_network(spec, model.network, torch.device("cpu"))
