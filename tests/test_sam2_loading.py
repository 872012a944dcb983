"""Building SAM 2.1 and MedSAM2 with upstream configs, loading checkpoints, opening sessions.

The networks here have the published sizes but random weights (no downloads are possible
in tests); the checkpoints are written from them.
"""

from __future__ import annotations

import dataclasses
import sys

import pytest
import torch

from SAMSegmentLib.checkpoints import CheckpointStore
from SAMSegmentLib.errors import CheckpointError, ModelUnavailableError
from SAMSegmentLib.prompts import Prompts
from SAMSegmentLib.propagation.sam2 import MemoryPolicy, build_sam2_predictor, load_sam2_predictor, open_sam2_session
from SAMSegmentLib.registry import get_spec
from SAMSegmentLib.volume import Axis

pytest.importorskip("sam2")
pytestmark = pytest.mark.sam2

CPU = torch.device("cpu")
TINY = get_spec("sam2.1_hiera_tiny")


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A random SAM 2.1 Hiera-T saved as upstream's checkpoints are ({"model": state dict})."""
    torch.manual_seed(0)
    state = build_sam2_predictor(TINY.architecture, CPU).state_dict()
    path = tmp_path_factory.mktemp("sam2") / TINY.filename
    torch.save({"model": state}, path)
    return path, state


def test_a_checkpoint_loads_into_our_predictor(tiny_weights) -> None:
    path, state = tiny_weights
    predictor = load_sam2_predictor(TINY, CPU, checkpoint=path)
    assert type(predictor).__name__ == "VolumeVideoPredictor" and not predictor.training
    assert predictor.image_size == 1024 and predictor.add_all_frames_to_correct_as_cond
    loaded = predictor.state_dict()
    assert all(torch.equal(loaded[name], tensor) for name, tensor in state.items())


def test_a_medsam2_session_from_the_store_segments_a_slice(tmp_path, tiny_weights, ct_phantom) -> None:
    path, _ = tiny_weights
    # MedSAM2 has SAM 2.1 Hiera-T's tensors, so the random Hiera-T file stands in for it.
    spec = dataclasses.replace(get_spec("medsam2"), size_bytes=path.stat().st_size)
    store = CheckpointStore(tmp_path)
    (tmp_path / spec.filename).write_bytes(path.read_bytes())
    session = open_sam2_session(spec, ct_phantom, Axis.CORONAL, CPU, "soft_tissue", "self-sorting", store=store)
    assert session.memory_policy is MemoryPolicy.SELF_SORTING and session.axis is Axis.CORONAL
    assert session.frames.mapping.preset == "soft_tissue" and session.frames.image_size == 512
    result = session.add_prompts(20, "organ", Prompts(box=(10, 2, 50, 10)))
    assert result.mask.shape == ct_phantom.slice_shape(Axis.CORONAL)


def test_missing_weights_say_how_to_get_them(tmp_path, ct_phantom) -> None:
    with pytest.raises(CheckpointError, match=r"samsegment download sam2\.1_hiera_tiny"):
        open_sam2_session(TINY, ct_phantom, Axis.AXIAL, CPU, store=CheckpointStore(tmp_path))


def test_a_checkpoint_of_another_model_is_refused(tmp_path, tiny_weights) -> None:
    _, state = tiny_weights
    incomplete = {name: tensor for name, tensor in state.items() if not name.startswith("memory_encoder.")}
    torch.save({"model": incomplete}, tmp_path / "incomplete.pt")
    with pytest.raises(CheckpointError, match="weights missing"):
        load_sam2_predictor(TINY, CPU, checkpoint=tmp_path / "incomplete.pt")
    resized = dict(state, no_mem_embed=torch.zeros(1, 1, 7))
    torch.save({"model": resized}, tmp_path / "resized.pt")
    with pytest.raises(CheckpointError, match="does not fit"):
        load_sam2_predictor(TINY, CPU, checkpoint=tmp_path / "resized.pt")


def test_medsam2_builds_from_upstream_config_at_512_px(tiny_weights) -> None:
    path, _ = tiny_weights
    medsam2 = get_spec("medsam2")
    predictor = load_sam2_predictor(medsam2, CPU, checkpoint=path)
    assert predictor.image_size == medsam2.input_size == 512
    # Memory attention's rotary encoding covers the 32 x 32 feature grid of a 512 px input.
    assert predictor.memory_attention.layers[0].self_attn.freqs_cis.shape[0] == 32 * 32


def test_a_spec_whose_input_size_disagrees_with_its_config_is_refused(tiny_weights) -> None:
    path, _ = tiny_weights
    with pytest.raises(ValueError, match="expects 512"):
        load_sam2_predictor(dataclasses.replace(TINY, input_size=512), CPU, checkpoint=path)


def test_only_sam2_family_models_are_loaded_here() -> None:
    with pytest.raises(ValueError, match="not a SAM 2 model"):
        load_sam2_predictor(get_spec("sam_vit_b"), CPU)


def test_without_the_sam2_package_the_error_says_how_to_install_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sam2.build_sam", None)
    with pytest.raises(ModelUnavailableError, match="SAM2_BUILD_CUDA=0 pip install"):
        build_sam2_predictor(TINY.architecture, CPU)


def test_an_unsupported_sam2_is_refused_naming_both_versions(monkeypatch) -> None:
    from SAMSegmentLib.propagation.sam2 import upstream

    real_version = upstream.metadata.version
    monkeypatch.setattr(upstream.metadata, "version", lambda name: "1.2.0" if name == "sam2" else real_version(name))
    with pytest.raises(ModelUnavailableError, match=r"needs sam2 1\.1\.0, but sam2 1\.2\.0 is installed"):
        build_sam2_predictor(TINY.architecture, CPU)
