"""The torch modules that are exported to ONNX: a model's image encoder and its mask decoder.

The encoder calls the model adapter's own ``encode_tensor``. The decoder of SAM and
LiteMedSAM is exported rearranged (``factored_decoder``: the same function in about half
the operations); other decoders call the adapter's ``run_mask_decoder``, so family
differences (HQ-SAM's intermediate features, its fused HQ mask) are included. Prompts are
embedded by the torch prompt encoder before the decoder graph runs: that is a handful of
tiny operations, and keeping it in torch keeps every prompt rule in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.base import ImageEmbedding, PromptableModel
from ..models.sam import IMAGE_EMBEDDINGS, SAMModel
from .factored_decoder import FactoredMaskDecoder, is_factorable

SPARSE_INPUT = "sparse_prompt_embeddings"
DENSE_INPUT = "dense_prompt_embeddings"
IMAGE_INPUT = "image"
DECODER_OUTPUTS = ("low_res_logits", "scores")


@dataclass(frozen=True)
class GraphDefinition:
    """Everything ``torch.onnx.export`` needs for one graph."""

    name: str  # folder name in the graph cache, e.g. "encoder" or "decoder_multimask"
    module: torch.nn.Module
    example_inputs: tuple[torch.Tensor, ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic_axes: dict[str, dict[int, str]]


class _EncoderModule(torch.nn.Module):
    def __init__(self, model: PromptableModel, feature_names: tuple[str, ...]) -> None:
        super().__init__()
        self.network = model.network  # registered, so the exporter sees the weights
        self._model = model
        self._feature_names = feature_names

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = self._model.encode_tensor(image)
        return tuple(features[name] for name in self._feature_names)


class _DecoderModule(torch.nn.Module):
    def __init__(self, model: PromptableModel, feature_names: tuple[str, ...], multimask: bool) -> None:
        super().__init__()
        self.network = model.network
        self._model = model
        self._feature_names = feature_names
        self._multimask = multimask

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        count = len(self._feature_names)
        features = dict(zip(self._feature_names, inputs[:count]))
        sparse, dense = inputs[count:]
        # The decoders read only the features; the sizes matter for upsampling, done in torch.
        embedding = ImageEmbedding(features, original_hw=(0, 0), resized_hw=(0, 0))
        return self._model.run_mask_decoder(embedding, sparse, dense, self._multimask)


def example_image(model: PromptableModel) -> torch.Tensor:
    return torch.zeros(1, 3, model.input_size, model.input_size, device=model.device)


@torch.no_grad()
def example_features(model: PromptableModel) -> dict[str, torch.Tensor]:
    """One real encoder output, to name the features and give the decoder example inputs."""
    return {name: value.clone() for name, value in model.encode_tensor(example_image(model)).items()}


def encoder_graph(model: PromptableModel, feature_names: tuple[str, ...]) -> GraphDefinition:
    # A fixed batch of one: TinyViT's reshapes bake the traced batch size into the graph.
    return GraphDefinition(
        name="encoder",
        module=_EncoderModule(model, feature_names),
        example_inputs=(example_image(model),),
        input_names=(IMAGE_INPUT,),
        output_names=feature_names,
        dynamic_axes={},
    )


def _decoder_module(model: PromptableModel, feature_names: tuple[str, ...], multimask: bool) -> torch.nn.Module:
    decoder = model.network.mask_decoder
    if isinstance(model, SAMModel) and feature_names == (IMAGE_EMBEDDINGS,) and is_factorable(decoder):
        return FactoredMaskDecoder(decoder, model.network.prompt_encoder.get_dense_pe(), multimask)
    return _DecoderModule(model, feature_names, multimask)


@torch.no_grad()
def decoder_graph(model: PromptableModel, features: dict[str, torch.Tensor], multimask: bool) -> GraphDefinition:
    """The mask decoder for any number of point and box tokens (dynamic axis 1 of the sparse input)."""
    names = tuple(features)
    box = torch.tensor([[0.0, 0.0, model.input_size / 2, model.input_size / 2]], device=model.device)
    point = (
        torch.tensor([[[model.input_size / 4, model.input_size / 4]]], device=model.device),
        torch.ones(1, 1, dtype=torch.int64, device=model.device),
    )
    # A point and a box: three tokens. Any other count works too (dynamic axis).
    sparse, dense = model.network.prompt_encoder(points=point, boxes=box, masks=None)
    return GraphDefinition(
        name="decoder_multimask" if multimask else "decoder",
        module=_decoder_module(model, names, multimask),
        example_inputs=(*features.values(), sparse.clone(), dense.contiguous()),
        input_names=(*names, SPARSE_INPUT, DENSE_INPUT),
        output_names=DECODER_OUTPUTS,
        dynamic_axes={SPARSE_INPUT: {1: "tokens"}},
    )
