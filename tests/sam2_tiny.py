"""The real SAM 2.1 architecture at a tiny size with random weights, for fast code-path tests.

Upstream's sam2.1_hiera_t.yaml with Hydra overrides: a 4-stage Hiera of width 8 with one
global-attention block, 64-channel features, one memory-attention layer and 128 px input.
Random weights say nothing about accuracy: only shapes, plumbing and memory handling are
tested with it.
"""

from __future__ import annotations

import torch

from SAMSegmentLib.propagation.sam2 import SAM2VolumeSession, build_sam2_predictor
from SAMSegmentLib.registry import get_spec
from SAMSegmentLib.volume import Axis, Volume

TINY_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
TINY_IMAGE_SIZE = 128
_WIDTH = 64
_GRID = TINY_IMAGE_SIZE // 16
TINY_OVERRIDES = (
    f"++model.image_size={TINY_IMAGE_SIZE}",
    "++model.image_encoder.trunk.embed_dim=8",
    # Global attention must not fall on a block that pools (the first of each stage).
    "++model.image_encoder.trunk.stages=[1,1,2,1]",
    "++model.image_encoder.trunk.global_att_blocks=[3]",
    "++model.image_encoder.trunk.window_pos_embed_bkg_spatial_size=[2,2]",
    "++model.image_encoder.neck.backbone_channel_list=[64,32,16,8]",
    f"++model.image_encoder.neck.d_model={_WIDTH}",
    f"++model.image_encoder.neck.position_encoding.num_pos_feats={_WIDTH}",
    f"++model.memory_attention.d_model={_WIDTH}",
    "++model.memory_attention.num_layers=1",
    f"++model.memory_attention.layer.d_model={_WIDTH}",
    "++model.memory_attention.layer.dim_feedforward=64",
    f"++model.memory_attention.layer.self_attention.embedding_dim={_WIDTH}",
    f"++model.memory_attention.layer.self_attention.feat_sizes=[{_GRID},{_GRID}]",
    f"++model.memory_attention.layer.cross_attention.embedding_dim={_WIDTH}",
    f"++model.memory_attention.layer.cross_attention.feat_sizes=[{_GRID},{_GRID}]",
    f"++model.memory_encoder.in_dim={_WIDTH}",
    f"++model.memory_encoder.mask_downsampler.embed_dim={_WIDTH}",
    f"++model.memory_encoder.fuser.layer.dim={_WIDTH}",
    "++model.memory_encoder.fuser.num_layers=1",
)
SPEC = get_spec("sam2.1_hiera_tiny")  # for prompt validation: SAM 2.1 takes points and boxes


def tiny_sam2_predictor(object_score: float = 4.0, seed: int = 0):
    """A tiny random SAM 2.1 whose object-presence logit is pinned to ``object_score``:
    positive makes it see the object on every slice, negative on none."""
    torch.manual_seed(seed)
    predictor = build_sam2_predictor(TINY_CONFIG, torch.device("cpu"), TINY_OVERRIDES)
    head = predictor.sam_mask_decoder.pred_obj_score_head.layers[-1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(object_score)
    return predictor


def tiny_session(predictor, volume: Volume, **options) -> SAM2VolumeSession:
    return SAM2VolumeSession(predictor, SPEC, volume, Axis.AXIAL, **options)
