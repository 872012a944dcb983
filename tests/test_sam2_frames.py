"""Volume slices as SAM 2 frames, and the inference state built around them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from SAMSegmentLib.intensity import mapping_for
from SAMSegmentLib.propagation.sam2.frames import IMAGE_MEAN, IMAGE_STD, VolumeFrames
from SAMSegmentLib.propagation.sam2.upstream import UpstreamState
from SAMSegmentLib.volume import Axis

pytest.importorskip("sam2")
pytestmark = pytest.mark.sam2

from sam2.utils.misc import load_video_frames  # noqa: E402
from sam2_tiny import tiny_sam2_predictor  # noqa: E402

Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def predictor():
    return tiny_sam2_predictor()


def test_frames_are_square_normalised_greyscale_made_per_slice(ct_phantom) -> None:
    frames = VolumeFrames(ct_phantom, Axis.CORONAL, mapping_for(ct_phantom), image_size=96)
    assert len(frames) == ct_phantom.array.shape[1]
    assert frames.slice_shape == (12, 64)
    frame = frames[5]
    assert frame.shape == (3, 96, 96) and frame.dtype == torch.float32
    pixels = frame * torch.tensor(IMAGE_STD).view(3, 1, 1) + torch.tensor(IMAGE_MEAN).view(3, 1, 1)
    assert torch.allclose(pixels[0], pixels[1], atol=1e-5) and torch.allclose(pixels[0], pixels[2], atol=1e-5)
    assert float(pixels.min()) >= -1e-5 and float(pixels.max()) <= 1 + 1e-5
    # Resizing keeps the slice's mean brightness.
    assert float(pixels[0].mean()) == pytest.approx(float(frames.slice_image(5).mean()), abs=0.02)
    with pytest.raises(IndexError):
        frames[len(frames)]


def test_frames_match_sam2s_own_loading_of_the_same_slices(tmp_path, ct_phantom) -> None:
    frames = VolumeFrames(ct_phantom, Axis.AXIAL, mapping_for(ct_phantom), image_size=128)
    for index in (3, 6):
        pixels = np.round(frames.slice_image(index).numpy() * 255).astype(np.uint8)
        Image.fromarray(pixels).convert("RGB").save(tmp_path / f"{index}.jpg", quality=100)
    upstream, height, width = load_video_frames(str(tmp_path), 128, offload_video_to_cpu=True)
    assert (height, width) == frames.slice_shape
    for position, index in enumerate((3, 6)):
        difference = (upstream[position] - frames[index]).abs()
        # JPEG rounding and PIL's bicubic kernel differ from ours by a few grey levels at edges.
        assert float(difference.mean()) < 0.03 and float(difference.max()) < 0.5


def test_the_state_has_the_fields_of_upstream_init_state(tmp_path, predictor, ct_phantom) -> None:
    rows, columns = ct_phantom.slice_shape(Axis.AXIAL)
    for index in range(2):
        Image.fromarray(np.full((rows, columns, 3), 100 + index, np.uint8)).save(tmp_path / f"{index}.jpg")
    upstream = predictor.init_state(str(tmp_path))
    ours = UpstreamState(VolumeFrames(ct_phantom, Axis.AXIAL, mapping_for(ct_phantom), 128), predictor.device).state
    assert set(ours) == set(upstream)
    # Apart from the frames themselves, upstream's warm-up encoding of frame 0 and where
    # frames live, the two states are equal: same sizes and devices, empty containers.
    differing = {"images", "num_frames", "cached_features", "offload_video_to_cpu"}
    assert {k: v for k, v in ours.items() if k not in differing} == {
        k: v for k, v in upstream.items() if k not in differing
    }
    assert ours["num_frames"] == ct_phantom.slice_count(Axis.AXIAL)
