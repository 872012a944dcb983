"""The model registry: every entry is complete, consistent and downloadable by name."""

from __future__ import annotations

import re
import urllib.parse

import pytest

from SAMSegmentLib.registry import MODELS, Family, ModelSpec, PromptKind, UnknownModelError, get_spec

DOWNLOADABLE = [spec for spec in MODELS.values() if not spec.embedded]


def test_names_are_unique_and_keys_match() -> None:
    assert all(name == spec.name for name, spec in MODELS.items())
    assert len({spec.name for spec in MODELS.values()}) == len(MODELS)
    assert len({spec.filename for spec in MODELS.values()}) == len(MODELS)


@pytest.mark.parametrize("spec", DOWNLOADABLE, ids=lambda spec: spec.name)
def test_downloadable_spec_is_complete(spec: ModelSpec) -> None:
    parts = urllib.parse.urlsplit(spec.url)
    assert parts.scheme == "https" and parts.netloc
    assert parts.path.rsplit("/", 1)[-1] == spec.filename
    assert spec.sha256 == "" or re.fullmatch(r"[0-9a-f]{64}", spec.sha256)
    assert spec.size_bytes > 0
    assert spec.licence and spec.description
    assert spec.input_size in (256, 512, 1024)


def test_embedded_spec_has_a_package_and_digest() -> None:
    spec = get_spec("litemedsam")
    assert spec.embedded and spec.url == ""
    assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256) and spec.size_bytes > 0


@pytest.mark.parametrize(
    "spec", [s for s in MODELS.values() if s.family in (Family.HQ_SAM, Family.SAM2)], ids=lambda s: s.name
)
def test_hq_sam_and_sam2_take_every_prompt(spec: ModelSpec) -> None:
    assert spec.prompts == frozenset(PromptKind)


def test_sam2_architectures_are_hydra_config_names() -> None:
    sam2 = [s for s in MODELS.values() if s.family is Family.SAM2]
    assert {s.name for s in sam2} >= {"sam2.1_hiera_tiny", "sam2.1_hiera_large", "medsam2"}
    assert all(re.fullmatch(r"configs/[\w./+-]+\.yaml", s.architecture) for s in sam2)
    assert get_spec("medsam2").input_size == 512


def test_hq_sam_architectures_exist_in_segment_anything_hq() -> None:
    package = pytest.importorskip("segment_anything_hq")
    for spec in (s for s in MODELS.values() if s.family is Family.HQ_SAM):
        assert spec.architecture in package.sam_model_registry


def test_sam_architectures_exist_in_segment_anything() -> None:
    package = pytest.importorskip("segment_anything")
    for spec in (s for s in MODELS.values() if s.family is Family.SAM):
        assert spec.architecture in package.sam_model_registry


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownModelError, match="sam_vit_b"):
        get_spec("no_such_model")


def test_mobile_sam_is_tinyvit_at_1024_px_with_sams_prompt_encoder_and_decoder() -> None:
    pytest.importorskip("segment_anything_hq")
    from segment_anything.modeling import MaskDecoder, PromptEncoder
    from segment_anything_hq.modeling import TinyViT

    from SAMSegmentLib.models import build_network

    spec = get_spec("mobile_sam")
    assert spec.input_size == 1024 and spec.prompts == frozenset(PromptKind) and spec.licence == "Apache-2.0"
    network = build_network(spec)
    assert isinstance(network.image_encoder, TinyViT)
    assert isinstance(network.prompt_encoder, PromptEncoder) and isinstance(network.mask_decoder, MaskDecoder)
    # The published checkpoint's layout: 439 tensors, 10,140,231 values.
    state = network.state_dict()
    assert len(state) == 439 and sum(t.numel() for t in state.values()) == 10_140_231
