"""A volume's slices as SAM 2 video frames, and SAM 2's inference state built around them.

Upstream's ``init_state`` reads frames from JPEG files or an MP4. Here the frames come
straight from the volume: each slice is mapped to [0, 1] with the volume's intensity mapping
(as ``VolumePredictor.slice_image`` does), resized to the model's square input and normalised
with ImageNet statistics, as ``sam2.utils.misc.load_video_frames`` does for JPEG frames.
Frames are made on demand, so a 300-slice volume never holds 300 full-size frames in memory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...intensity import IntensityMapping
from ...volume import Axis, Volume

# sam2.utils.misc.load_video_frames' defaults (ImageNet), on pixel values in [0, 1].
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


class VolumeFrames:
    """Sequence of frames [3, S, S] (float32, on the CPU) for the slices along ``axis``."""

    def __init__(self, volume: Volume, axis: Axis, mapping: IntensityMapping, image_size: int) -> None:
        self.volume = volume
        self.axis = Axis(axis)
        self.mapping = mapping
        self.image_size = image_size
        self._mean = torch.tensor(IMAGE_MEAN).view(3, 1, 1)
        self._std = torch.tensor(IMAGE_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return self.volume.slice_count(self.axis)

    @property
    def slice_shape(self) -> tuple[int, int]:
        return self.volume.slice_shape(self.axis)

    def slice_image(self, index: int) -> torch.Tensor:
        """The slice mapped to [0, 1], [rows, columns]."""
        return torch.from_numpy(self.mapping.apply(self.volume.slice_2d(self.axis, index)))

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < len(self):
            raise IndexError(f"Slice {index} is outside 0..{len(self) - 1}.")
        image = self.slice_image(index)[None, None]
        # Bicubic with antialiasing and clamping is what PIL's resize of the JPEG frames does.
        size = (self.image_size, self.image_size)
        resized = F.interpolate(image, size=size, mode="bicubic", antialias=True, align_corners=False)
        rgb = resized.clamp(0.0, 1.0)[0].expand(3, -1, -1)
        return (rgb - self._mean) / self._std
