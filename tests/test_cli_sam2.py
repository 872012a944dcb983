"""``samsegment segment`` with SAM 2 family models: one slice, propagation with either memory
policy (a tiny random SAM 2.1 in place of the downloaded weights), and the errors a user meets."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import SimpleITK as sitk

from SAMSegmentLib.checkpoints import CACHE_DIR_ENV
from SAMSegmentLib.cli import main
from SAMSegmentLib.cli.common import open_model
from SAMSegmentLib.errors import ModelUnavailableError
from SAMSegmentLib.imageio import read_labels, read_volume
from SAMSegmentLib.prompts import Prompts
from SAMSegmentLib.propagation import ObjectPrompts, PropagationRequest
from SAMSegmentLib.propagation.sam2 import MemoryPolicy, SAM2VolumeSession
from SAMSegmentLib.registry import get_spec
from SAMSegmentLib.volume import Axis

pytest.importorskip("sam2")
pytestmark = pytest.mark.sam2

from sam2_tiny import tiny_sam2_predictor  # noqa: E402

SEED = 4
CENTRE = Prompts(points=[(32.0, 24.0)], labels=[1])  # --point 32,24 on an axial slice


@pytest.fixture(scope="module")
def predictor():
    return tiny_sam2_predictor(object_score=4.0)


@pytest.fixture
def image(tmp_path, ct_phantom):
    """The phantom's middle 8 slices as a file, the organ around slice 4."""
    image = sitk.GetImageFromArray(ct_phantom.array[2:10])
    image.SetSpacing(ct_phantom.spacing)
    image.SetOrigin(ct_phantom.origin)
    path = tmp_path / "ct.nrrd"
    sitk.WriteImage(image, str(path))
    return path


@pytest.fixture
def loads(predictor, monkeypatch) -> list:
    """The tiny SAM 2.1 stands in for the downloaded weights; each load's arguments are kept."""
    from SAMSegmentLib.propagation.sam2 import loading

    calls = []

    def load(spec, device, store=None, checkpoint=None):
        calls.append((spec.name, str(device), checkpoint))
        return predictor

    monkeypatch.setattr(loading, "load_sam2_predictor", load)
    return calls


def segment(image, output, *options: str) -> int:
    return main(
        [
            "segment",
            "--image",
            str(image),
            "--slice",
            str(SEED),
            "--point",
            "32,24",
            "--name",
            "organ",
            "--output",
            str(output),
            "--model",
            "sam2.1_hiera_tiny",
            "--device",
            "cpu",
            *options,
        ]
    )


@pytest.mark.parametrize("policy", ["recent", "self-sorting"])
def test_propagation_writes_what_a_session_with_that_memory_gives(image, tmp_path, predictor, loads, capsys, policy):
    output = tmp_path / "organ.seg.nrrd"
    options = ["--propagate", "--range", "2,5", "--memory-policy", policy, "--png", str(tmp_path / "o.png")]
    assert segment(image, output, *options) == 0
    assert loads == [("sam2.1_hiera_tiny", "cpu", None)]
    volume = read_volume(image)
    written = read_labels(output, volume) > 0
    session = SAM2VolumeSession(
        predictor, get_spec("sam2.1_hiera_tiny"), volume, Axis.AXIAL, memory_policy=MemoryPolicy(policy)
    )
    request = PropagationRequest(Axis.AXIAL, SEED, [ObjectPrompts("organ", CENTRE)], slice_range=(2, 5))
    np.testing.assert_array_equal(written, session.propagate_request(request).run().objects["organ"].mask)
    # The tiny model sees the organ on every slice: the range bounds the propagation.
    assert np.flatnonzero(written.any(axis=(1, 2))).tolist() == [2, 3, 4, 5]
    out = capsys.readouterr().out
    assert "organ: segmented slices 2..5 (4 slices, 3 embedded)" in out and (tmp_path / "o.png").is_file()


def test_one_slice_without_propagation(image, tmp_path, predictor, loads, capsys):
    output = tmp_path / "organ.seg.nrrd"
    assert segment(image, output) == 0
    volume = read_volume(image)
    written = read_labels(output, volume) > 0
    session = SAM2VolumeSession(predictor, get_spec("sam2.1_hiera_tiny"), volume, Axis.AXIAL)
    expected = session.add_prompts(SEED, "organ", CENTRE)
    np.testing.assert_array_equal(written[SEED], expected.mask)
    assert not np.delete(written, SEED, axis=0).any()
    assert f"predicted IoU {expected.score:.3f}" in capsys.readouterr().out


def test_weights_not_downloaded_say_how_to_get_them(image, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "checkpoints"))
    output = tmp_path / "organ.seg.nrrd"
    assert segment(image, output, "--propagate") == 2
    error = capsys.readouterr().err
    assert "The weights of sam2.1_hiera_tiny are not on this computer" in error
    assert "samsegment download sam2.1_hiera_tiny" in error and "--from-file" in error
    assert not output.exists()


def test_bad_options_are_refused_before_any_model_loads(image, tmp_path, loads, capsys):
    output = tmp_path / "organ.seg.nrrd"
    assert segment(image, output, "--propagate", "--range", "0,2") == 2
    assert "outside the range 0..2" in capsys.readouterr().err
    assert segment(image, output, "--model", "sam_vit_b", "--memory-policy", "self-sorting") == 2
    assert "memory policy applies to SAM 2 models only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        segment(image, output, "--memory-policy", "oldest")
    assert "invalid choice: 'oldest'" in capsys.readouterr().err
    assert loads == [] and not output.exists()


def test_commands_without_sam2_support_name_the_one_that_has_it():
    args = argparse.Namespace(model="medsam2", device="cpu", checkpoint=None, backend="auto")
    with pytest.raises(ModelUnavailableError, match="samsegment segment"):
        open_model(args)
