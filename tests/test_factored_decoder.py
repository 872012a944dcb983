"""The rearranged SAM mask decoder computes what the upstream decoder computes."""

import numpy as np
import pytest
import torch

from SAMSegmentLib.backends.factored_decoder import FactoredMaskDecoder, is_factorable

# Float32 sums taken in another order: the tiny random decoders agree to ~1e-6.
LOGIT_TOLERANCE = 1e-4


def _sam_b_sized_decoder():
    """The decoder of every SAM size (ViT-B/L/H share it): two transformer blocks, which the
    tiny test models (one block) do not have; random weights, timing nothing."""
    from segment_anything import modeling

    torch.manual_seed(3)
    transformer = modeling.TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8)
    decoder = modeling.MaskDecoder(num_multimask_outputs=3, transformer=transformer, transformer_dim=256)
    prompt_encoder = modeling.PromptEncoder(
        embed_dim=256, image_embedding_size=(16, 16), input_image_size=(64, 64), mask_in_chans=16
    )
    return decoder.eval(), prompt_encoder.eval()


def _prompts(prompt_encoder, prompt_count, with_mask):
    generator = torch.Generator().manual_seed(prompt_count)
    points = (torch.rand(prompt_count, 2, 2, generator=generator) * 64, torch.tensor([[1, 0]] * prompt_count))
    boxes = torch.tensor([[4.0, 6.0, 40.0, 50.0]] * prompt_count)
    masks = torch.randn(prompt_count, 1, 64, 64, generator=generator) if with_mask else None
    return prompt_encoder(points=points, boxes=boxes, masks=masks)


@pytest.mark.parametrize("multimask", [False, True])
@pytest.mark.parametrize("prompt_count, with_mask", [(1, False), (3, True)])
@torch.no_grad()
def test_factored_decoder_matches_upstream(multimask, prompt_count, with_mask):
    decoder, prompt_encoder = _sam_b_sized_decoder()
    image_embeddings = torch.randn(1, 256, 16, 16, generator=torch.Generator().manual_seed(7))
    sparse, dense = _prompts(prompt_encoder, prompt_count, with_mask)
    image_pe = prompt_encoder.get_dense_pe()
    expected_logits, expected_scores = decoder(image_embeddings, image_pe, sparse, dense, multimask)
    logits, scores = FactoredMaskDecoder(decoder, image_pe, multimask)(image_embeddings, sparse, dense)
    assert logits.shape == expected_logits.shape == (prompt_count, 3 if multimask else 1, 64, 64)
    torch.testing.assert_close(logits, expected_logits, atol=LOGIT_TOLERANCE, rtol=0)
    torch.testing.assert_close(scores, expected_scores, atol=1e-5, rtol=0)
    np.testing.assert_array_equal((logits > 0).numpy(), (expected_logits > 0).numpy())


@torch.no_grad()
def test_tiny_sam_decoder_with_its_first_block_skipping_positions(tiny_sam_model):
    network = tiny_sam_model.network
    image_embeddings = torch.randn(1, 256, 8, 8, generator=torch.Generator().manual_seed(2))
    sparse, dense = network.prompt_encoder(points=None, boxes=torch.tensor([[10.0, 8.0, 90.0, 70.0]]), masks=None)
    image_pe = network.prompt_encoder.get_dense_pe()
    expected, _ = network.mask_decoder(image_embeddings, image_pe, sparse, dense, False)
    actual, _ = FactoredMaskDecoder(network.mask_decoder, image_pe, False)(image_embeddings, sparse, dense)
    torch.testing.assert_close(actual, expected, atol=LOGIT_TOLERANCE, rtol=0)


def test_only_segment_anythings_own_decoder_is_factored(tiny_sam_model, tiny_hq_model):
    assert is_factorable(tiny_sam_model.network.mask_decoder)
    assert not is_factorable(tiny_hq_model.network.mask_decoder)  # HQ-SAM fuses encoder features too
    with pytest.raises(TypeError, match="MaskDecoderHQ"):
        FactoredMaskDecoder(tiny_hq_model.network.mask_decoder, torch.zeros(1, 256, 8, 8), False)
