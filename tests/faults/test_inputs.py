"""Guarantees about inputs that are not what they seem: a cut image file, NaN prompts, broken
weights, a sparse volume, options that would do nothing, a reused volume key, memory running out.
Each test's docstring states one guarantee."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from synthetic import make_ct_phantom

from SAMSegmentLib.cache import EmbeddingCache
from SAMSegmentLib.cli import main
from SAMSegmentLib.errors import CheckpointError, InferenceOutOfMemoryError, InputImageError, PromptError
from SAMSegmentLib.imageio import read_volume
from SAMSegmentLib.intensity import mapping_for
from SAMSegmentLib.predictor import VolumePredictor
from SAMSegmentLib.prompts import Prompts
from SAMSegmentLib.registry import get_spec
from SAMSegmentLib.volume import Axis, Volume

NAN, INF = math.nan, math.inf


def _write(volume: Volume, path: Path) -> Path:
    sitk.WriteImage(sitk.GetImageFromArray(volume.array), str(path))
    return path


# -- image files ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ct.nii.gz", "ct.nii"])
@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_a_truncated_nifti_is_refused_not_read_as_zeros(tmp_path: Path, name: str, keep: float) -> None:
    """A NIfTI file (plain or gzipped) cut short anywhere is refused with a clear error, never
    read with zeros in place of the missing voxels."""
    data = _write(make_ct_phantom(), tmp_path / name).read_bytes()
    cut = tmp_path / ("cut-" + name)
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(InputImageError, match="truncated"):
        read_volume(cut)


def test_a_corrupt_gzipped_nifti_is_refused(tmp_path: Path) -> None:
    """A .nii.gz whose compressed bytes are damaged (checksum or stream error) is refused."""
    data = bytearray(_write(make_ct_phantom(), tmp_path / "ct.nii.gz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged = tmp_path / "damaged.nii.gz"
    damaged.write_bytes(bytes(data))
    with pytest.raises(InputImageError, match="damaged compressed data"):
        read_volume(damaged)


def test_a_complete_nifti_reads_unchanged(tmp_path: Path) -> None:
    """The completeness check accepts intact NIfTI files, voxel for voxel."""
    phantom = make_ct_phantom()
    for name in ("ct.nii.gz", "ct.nii"):
        assert np.array_equal(read_volume(_write(phantom, tmp_path / name)).array, phantom.array)


@pytest.mark.realdata
def test_the_shared_ct_cut_in_half_is_refused(abdomen_ct_dir: Path, tmp_path: Path) -> None:
    """The real abdominal CT, cut in half as an interrupted copy would leave it, is refused."""
    data = (abdomen_ct_dir / "ct.nii.gz").read_bytes()
    (tmp_path / "ct.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputImageError, match="truncated"):
        read_volume(tmp_path / "ct.nii.gz")


# -- prompts and options -------------------------------------------------------------


@pytest.mark.parametrize(
    "prompts",
    [
        Prompts(box=(NAN, 10, 40, 30)),
        Prompts(box=(10, 10, INF, 30)),
        Prompts(points=[(NAN, 5.0)], labels=[1]),
        Prompts(points=[(5.0, -INF)], labels=[1]),
    ],
)
def test_non_finite_prompts_are_refused(prompts: Prompts) -> None:
    """A point or box with a NaN or infinite coordinate is refused by prompt validation, the one
    check the CLI, the engine and the engine service all go through."""
    with pytest.raises(PromptError, match="not a finite position"):
        prompts.validate((48, 64), get_spec("sam_vit_b"))


@pytest.fixture
def image_file(tmp_path: Path) -> Path:
    return _write(make_ct_phantom(), tmp_path / "ct.nrrd")


def _segment(image: Path, tmp_path: Path, *options: str) -> list[str]:
    return ["segment", "--image", str(image), "--slice", "5", "--output", str(tmp_path / "out.seg.nrrd"), *options]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--box=nan,10,40,30"], "not a finite position"),
        (["--box", "10,10,40,30", "--propagate", "--range", "nan,8"], "whole slice numbers"),
        (["--box", "10,10,40,30", "--propagate", "--range=inf,8"], "whole slice numbers"),
        (["--box", "10,10,40,30", "--propagate", "--range", "2.5,8"], "whole slice numbers"),
        (["--box", "10,10,40,30", "--range", "2,8"], "--range only apply with --propagate"),
        (["--box", "10,10,40,30", "--direction", "forward"], "--direction only apply with --propagate"),
    ],
)
def test_the_cli_refuses_meaningless_numbers_and_options_before_loading_a_model(
    image_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    """NaN or infinite coordinates, fractional or non-finite slice numbers, and --range or --direction
    without --propagate end with exit code 2 and a message (no traceback, no silent truncation, no
    option silently ignored), and nothing is written."""
    assert main(_segment(image_file, tmp_path, *options)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.seg.nrrd").exists()


def test_the_help_says_how_to_give_a_negative_box_corner(capsys: pytest.CaptureFixture[str]) -> None:
    """The help of --box says how to write a negative corner (--box=-5,...), which argparse would
    otherwise take for an option."""
    with pytest.raises(SystemExit):
        main(["segment", "--help"])
    assert "--box=-5" in capsys.readouterr().out.replace("\n", " ")


# -- model output --------------------------------------------------------------------


def test_a_model_with_nan_weights_is_reported_as_a_broken_checkpoint(tiny_sam_model, ct_phantom: Volume) -> None:
    """A model that outputs NaN or infinity (NaN, overflowing or untrained weights) raises a
    CheckpointError naming the broken checkpoint instead of returning an empty mask scored NaN, and
    no NaN embedding is cached."""
    broken = copy.deepcopy(tiny_sam_model)
    with torch.no_grad():
        for parameter in broken.network.parameters():
            parameter.fill_(NAN)
    predictor = VolumePredictor(broken)
    predictor.set_volume(ct_phantom)
    with pytest.raises(CheckpointError, match=r"NaN or infinite.*checkpoint is broken"):
        predictor.predict(Axis.AXIAL, 5, Prompts(box=(10, 10, 40, 30)))
    assert len(predictor.cache) == 0


# -- intensity -----------------------------------------------------------------------


def test_a_sparse_volume_gets_its_mapping_from_the_voxels_that_are_there() -> None:
    """A volume whose few non-zero voxels all fall between the strided intensity samples still gets
    a mapping spanning its values (not 0..0, which divided by zero), so those voxels map to bright."""
    array = np.zeros((40, 256, 256), dtype=np.int16)  # 2.6 M voxels: sampled every 2nd voxel
    array[20, 100, 101:120:2] = 300  # odd flat indices only: no sample sees them
    volume = Volume(array, modality="MR")
    mapping = mapping_for(volume)
    assert mapping.low < mapping.high and np.isfinite([mapping.low, mapping.high]).all()
    assert mapping.apply(array[20, 100, 101]) == pytest.approx(1.0)
    assert mapping.apply(array[0, 0, 0]) == pytest.approx(0.0)


# -- embedding cache -----------------------------------------------------------------


def test_a_reused_volume_key_never_serves_another_volumes_embedding(tiny_sam_model) -> None:
    """Embeddings are reused only for the same key and the same voxels: the same key given again with
    other content or another grid embeds afresh and returns a mask of the new slice's shape, while
    the same volume again is served from the cache."""
    cache: EmbeddingCache = EmbeddingCache()
    predictor = VolumePredictor(tiny_sam_model, cache)
    prompts = Prompts(box=(10, 10, 30, 30))
    first = make_ct_phantom()
    predictor.set_volume(first, volume_key="node-1")
    predictor.predict(Axis.AXIAL, 5, prompts)
    predictor.set_volume(make_ct_phantom(), volume_key="node-1")  # same content again
    predictor.predict(Axis.AXIAL, 5, prompts)
    assert predictor.embed_count == 1

    edited = Volume(first.array.copy())
    edited.array[5, 0, 0] += 1  # one voxel edited
    predictor.set_volume(edited, volume_key="node-1", intensity=predictor.mapping)
    predictor.predict(Axis.AXIAL, 5, prompts)
    assert predictor.embed_count == 2

    other_grid = make_ct_phantom(shape=(12, 40, 56))
    predictor.set_volume(other_grid, volume_key="node-1", intensity=predictor.mapping)
    assert predictor.predict(Axis.AXIAL, 5, prompts).mask.shape == (40, 56)
    assert predictor.embed_count == 3


# -- memory --------------------------------------------------------------------------


def test_out_of_memory_advice_fits_the_device(tiny_sam_model, ct_phantom: Volume, monkeypatch) -> None:
    """Running out of memory on the CPU says the computer ran out and never advises switching to the
    CPU; on a GPU it advises switching to the CPU."""
    predictor = VolumePredictor(tiny_sam_model)
    predictor.set_volume(ct_phantom)

    def exhausted(image: np.ndarray) -> None:
        raise MemoryError("Unable to allocate 2.00 GiB")

    monkeypatch.setattr(tiny_sam_model, "encode", exhausted)
    with pytest.raises(InferenceOutOfMemoryError) as raised:
        predictor.predict(Axis.AXIAL, 3, Prompts(box=(10, 10, 40, 30)))
    assert "computer ran out of memory" in str(raised.value) and "CPU" not in str(raised.value)
    assert "switch the device to CPU" in str(InferenceOutOfMemoryError.on("cuda", "CUDA out of memory"))
