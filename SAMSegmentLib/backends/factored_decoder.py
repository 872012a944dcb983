"""SAM's mask decoder rearranged for fewer operations on the CPU; the same function.

Exported to ONNX in place of ``segment_anything``'s ``MaskDecoder`` (SAM and LiteMedSAM),
reusing its weights. Two rearrangements, both exact in real arithmetic (only float
rounding differs; the parity tests bound it):

* Attention between the few prompt tokens (5-10) and the 4096 image tokens never projects
  the image side. Tokens attending to the image move their queries into the image's
  channel space (through ``k_proj``) and pool the raw image before ``v_proj``; the image
  attending to tokens moves the tokens' keys through ``q_proj`` and their values through
  ``out_proj``. Per attention that replaces two 4096 x 256 x 128 projections with two
  products against a few dozen vectors: the decoder drops from ~3.6 to ~2 GFLOP.
* The output upscaling (two 2 x 2 stride-2 transposed convolutions, a channel LayerNorm
  and the hypernetwork product) runs channels-last as matrix products, and only the
  finished masks are put back into image order. ONNX Runtime otherwise spends a quarter
  of the decoder on layout transposes and a LayerNorm over the channel axis of NCHW that
  it cannot fuse.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


def is_factorable(decoder: nn.Module) -> bool:
    """True for ``segment_anything``'s decoder, also as vendored by LiteMedSAM (matched by
    class names and layout, as each package has its own copy of the classes); HQ-SAM's
    decoder fuses more features and is exported as it is."""
    if type(decoder).__name__ != "MaskDecoder" or type(decoder.transformer).__name__ != "TwoWayTransformer":
        return False
    upscaling = list(getattr(decoder, "output_upscaling", []))
    convolutions = [upscaling[i] for i in (0, 3)] if len(upscaling) == 5 else []
    return len(convolutions) == 2 and all(
        isinstance(conv, nn.ConvTranspose2d)
        and conv.kernel_size == (2, 2)
        and conv.stride == (2, 2)
        and conv.padding == (0, 0)
        and conv.output_padding == (0, 0)
        and conv.groups == 1
        for conv in convolutions
    )


# segment_anything's decoder classes, reached by duck typing: LiteMedSAM vendors its own copies of them.
SamModule = Any


class FactoredMaskDecoder(nn.Module):
    """``MaskDecoder.forward`` for one image, as (low-res logits, scores)."""

    image_pe: torch.Tensor  # a registered buffer, 1 x HW x C

    def __init__(self, decoder: SamModule, image_pe: torch.Tensor, multimask: bool) -> None:
        super().__init__()
        if not is_factorable(decoder):
            raise TypeError(f"{type(decoder).__name__} is not segment_anything's MaskDecoder.")
        self.decoder = decoder
        self.register_buffer("image_pe", image_pe.flatten(2).transpose(1, 2).contiguous())  # 1 x HW x C
        masks = decoder.num_mask_tokens
        # A Python int, not a traced size: the exporter needs LayerNorm's shape as a constant.
        self.upscaling_channels = int(decoder.output_upscaling[1].weight.shape[0])
        self.mask_indices = tuple(range(1, masks)) if multimask else (0,)

    def forward(
        self, image_embeddings: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        decoder = self.decoder
        prompts = sparse.shape[0]
        output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
        tokens = torch.cat((output_tokens.unsqueeze(0).expand(prompts, -1, -1), sparse), dim=1)
        height, width = image_embeddings.shape[-2:]
        image = (image_embeddings + dense).flatten(2).transpose(1, 2)  # prompts x HW x C
        token_out, image_out = _two_way_transformer(decoder.transformer, image, self.image_pe, tokens)

        hyper = torch.stack(
            [decoder.output_hypernetworks_mlps[i](token_out[:, 1 + i]) for i in self.mask_indices], dim=1
        )
        masks = _upscaled_masks(decoder.output_upscaling, self.upscaling_channels, image_out, hyper, height, width)
        scores = decoder.iou_prediction_head(token_out[:, 0])[:, list(self.mask_indices)]
        return masks, scores


def _two_way_transformer(
    transformer: SamModule, image: torch.Tensor, image_pe: torch.Tensor, tokens: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    queries, keys = tokens, image
    for layer in transformer.layers:
        queries, keys = _attention_block(layer, queries, keys, tokens, image_pe)
    attended = _tokens_to_image(transformer.final_attn_token_to_image, queries + tokens, keys + image_pe, keys)
    return transformer.norm_final_attn(queries + attended), keys


def _attention_block(
    layer: SamModule,
    queries: torch.Tensor,
    keys: torch.Tensor,
    query_pe: torch.Tensor,
    key_pe: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    if layer.skip_first_layer_pe:
        queries = layer.self_attn(q=queries, k=queries, v=queries)
    else:
        with_pe = queries + query_pe
        queries = queries + layer.self_attn(q=with_pe, k=with_pe, v=queries)
    queries = layer.norm1(queries)
    keys_with_pe = keys + key_pe
    queries = layer.norm2(
        queries + _tokens_to_image(layer.cross_attn_token_to_image, queries + query_pe, keys_with_pe, keys)
    )
    queries = layer.norm3(queries + layer.mlp(queries))
    keys = layer.norm4(
        keys + _image_to_tokens(layer.cross_attn_image_to_token, keys_with_pe, queries + query_pe, queries)
    )
    return queries, keys


def _head_weights(linear: nn.Linear, heads: int) -> torch.Tensor:
    """A projection's weight as heads x head_dim x in_features."""
    return linear.weight.reshape(heads, -1, linear.weight.shape[1])


def _tokens_to_image(
    attention: SamModule, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor
) -> torch.Tensor:
    """Few queries, many keys: ``attention(q=queries, k=keys, v=values)``."""
    heads = attention.num_heads
    prompts, n_queries, channels = queries.shape
    head_dim = attention.internal_dim // heads
    q = attention.q_proj(queries).reshape(prompts, n_queries, heads, head_dim).transpose(1, 2)
    # q . (W_k x + b_k) = (W_k^T q) . x + q . b_k; the last term is the same for every key,
    # and softmax ignores a constant, so k_proj's bias drops out.
    q_in_image_space = (q @ _head_weights(attention.k_proj, heads)).reshape(prompts, heads * n_queries, channels)
    # Image tokens as the rows of both products (scores transposed): ONNX Runtime's GEMM
    # packs its right-hand matrix, and the few query vectors are far cheaper to pack.
    weights = torch.softmax((keys @ q_in_image_space.transpose(1, 2)) / math.sqrt(head_dim), dim=1)
    # The weights of each query sum to one, so pooling before v_proj keeps v_proj's bias as is.
    pooled = (values.transpose(1, 2) @ weights).transpose(1, 2).reshape(prompts, heads, n_queries, channels)
    out = pooled @ _head_weights(attention.v_proj, heads).transpose(1, 2) + attention.v_proj.bias.reshape(
        heads, 1, head_dim
    )
    return attention.out_proj(out.transpose(1, 2).reshape(prompts, n_queries, heads * head_dim))


def _image_to_tokens(
    attention: SamModule, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor
) -> torch.Tensor:
    """Many queries, few keys: ``attention(q=queries, k=keys, v=values)``."""
    heads = attention.num_heads
    prompts, n_queries, channels = queries.shape
    n_keys = keys.shape[1]
    head_dim = attention.internal_dim // heads
    k = attention.k_proj(keys).reshape(prompts, n_keys, heads, head_dim).transpose(1, 2)
    # (W_q x + b_q) . k = x . (W_q^T k) + b_q . k: project the few keys, not the many queries.
    k_in_image_space = (k @ _head_weights(attention.q_proj, heads)).reshape(prompts, heads * n_keys, channels)
    k_bias = (k @ attention.q_proj.bias.reshape(heads, head_dim, 1)).reshape(prompts, 1, heads * n_keys)
    scores = (queries @ k_in_image_space.transpose(1, 2) + k_bias) / math.sqrt(head_dim)
    weights = torch.softmax(scores.reshape(prompts, n_queries, heads, n_keys), dim=-1)
    v = attention.v_proj(values).reshape(prompts, n_keys, heads, head_dim).transpose(1, 2)
    # out_proj applied to each head's values first: a weighted sum of projected values.
    out_weight = attention.out_proj.weight.reshape(channels, heads, head_dim).permute(1, 2, 0)
    projected_values = (v @ out_weight).reshape(prompts, heads * n_keys, channels)
    return weights.reshape(prompts, n_queries, heads * n_keys) @ projected_values + attention.out_proj.bias


def _upscaled_masks(
    upscaling: SamModule, channels: int, image: torch.Tensor, hyper: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """``hyper @ output_upscaling(image)`` as prompts x masks x 4H x 4W, computed channels-last.

    A 2 x 2 stride-2 transposed convolution maps each pixel to its own 2 x 2 block: one matrix
    product gives the block, ordered (row offset, column offset, channel).
    """
    first, norm, first_activation, second, second_activation = upscaling
    prompts = image.shape[0]
    x = _block_transpose_conv(first, image)  # prompts x (HW * 4) x C/4, pixels ordered (i, j, a, b)
    x = first_activation(F.layer_norm(x, (channels,), norm.weight, norm.bias, norm.eps))
    x = second_activation(_block_transpose_conv(second, x))  # (HW * 16) x C/8, ordered (i, j, a, b, c, d)
    masks = x @ hyper.transpose(1, 2)  # prompts x (HW * 16) x masks
    # Output row 4i + 2a + c, column 4j + 2b + d.
    masks = masks.reshape(prompts, height, width, 2, 2, 2, 2, -1).permute(0, 7, 1, 3, 5, 2, 4, 6)
    return masks.reshape(prompts, -1, 4 * height, 4 * width)


def _block_transpose_conv(conv: nn.ConvTranspose2d, pixels: torch.Tensor) -> torch.Tensor:
    in_channels, out_channels = conv.weight.shape[:2]
    weight = conv.weight.permute(0, 2, 3, 1).reshape(in_channels, 4 * out_channels)
    blocks = pixels @ weight  # prompts x pixels x (2 * 2 * out_channels)
    assert conv.bias is not None, "is_factorable admits SAM's upscaling, whose convolutions have biases"
    return blocks.reshape(pixels.shape[0], -1, out_channels) + conv.bias
