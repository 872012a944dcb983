"""When has the object ended? Checks applied to each propagated slice before it is accepted."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..metrics import dice
from ..prediction import Prediction


@dataclass
class ObjectTrack:
    """What the stop rule remembers of one object along one direction."""

    seed_area: int
    seed_mean: float
    seed_std: float
    previous_mask: np.ndarray

    def copy(self) -> ObjectTrack:
        return copy.copy(self)


@dataclass
class StopRule:
    """Stop a direction when the object has ended.

    A slice is refused (and the direction stops) when its mask is empty, the model's
    predicted quality falls below ``min_score``, the area falls below ``min_area_fraction``
    of the seed's, the mask overlaps the previous slice's by less than ``min_overlap`` Dice
    (the model jumped to a neighbouring structure), or its mean intensity has drifted more
    than ``max_intensity_shift`` seed standard deviations from the seed's (another tissue).

    The prompted slice itself is judged absent when three signals agree: the model is unsure
    (score below ``absent_score``), the mask does not stand out from a ring around it (contrast
    below ``absent_contrast``) and its outline does not follow image edges (gradient on the
    outline below ``absent_edge`` times the gradient around it). A box on plain tissue then
    yields nothing instead of a blob carried through the volume. No single signal is enough:
    on real CT, vessels and bowel have low contrast, faint lesions weak edges, and LiteMedSAM
    scores a blob on plain tissue up to about 0.77.
    """

    min_score: float = 0.5
    min_area_fraction: float = 0.02
    min_overlap: float = 0.4
    max_intensity_shift: float = 1.5
    margin_fraction: float = 0.1
    min_margin_pixels: float = 2.0
    absent_score: float = 0.8
    absent_contrast: float = 0.5
    absent_edge: float = 1.1
    contrast_ring_pixels: int = 3
    edge_region_pixels: int = 6

    def box_margin(self, width: float, height: float) -> tuple[float, float]:
        """Margin added around the carried box so a growing object is not clipped."""
        return (max(self.min_margin_pixels, self.margin_fraction * width),
                max(self.min_margin_pixels, self.margin_fraction * height))

    def absent_reason(self, seed: Prediction, image01: np.ndarray) -> str:
        """Why the prompted slice shows no object, or "" when it shows one."""
        if not seed.mask.any():
            return "absent: the model found nothing at the prompts"
        if seed.score >= self.absent_score:
            return ""
        contrast = self.boundary_contrast(seed.mask, image01)
        edge = self.edge_alignment(seed.mask, image01)
        if contrast < self.absent_contrast and edge < self.absent_edge:
            return (f"absent: nothing stands out at the prompts (predicted quality {seed.score:.2f}, "
                    f"contrast with the surroundings {contrast:.2f}, edge alignment {edge:.2f})")
        return ""

    def edge_alignment(self, mask: np.ndarray, image01: np.ndarray) -> float:
        """Mean gradient magnitude on the mask's outline relative to the mean around the mask."""
        gradient = ndimage.gaussian_gradient_magnitude(image01.astype(np.float32), 1.0)
        outline = mask & ~ndimage.binary_erosion(mask)
        around = ndimage.binary_dilation(mask, iterations=self.edge_region_pixels)
        return float(gradient[outline].mean()) / (float(gradient[around].mean()) + 1e-6)

    def boundary_contrast(self, mask: np.ndarray, image01: np.ndarray) -> float:
        """Difference of mean intensity inside the mask and in a ring just outside it, in units of
        their average standard deviation."""
        ring = ndimage.binary_dilation(mask, iterations=self.contrast_ring_pixels) & ~mask
        if not ring.any():
            return float("inf")
        inside, outside = image01[mask], image01[ring]
        spread = 0.5 * (float(inside.std()) + float(outside.std())) + 1e-3
        return abs(float(inside.mean()) - float(outside.mean())) / spread

    def start(self, seed: Prediction, image01: np.ndarray) -> ObjectTrack:
        values = image01[seed.mask]
        return ObjectTrack(int(seed.mask.sum()), float(values.mean()), float(values.std()) + 0.02, seed.mask)

    def check(self, track: ObjectTrack, prediction: Prediction, image01: np.ndarray) -> str:
        """The reason to stop before this slice, or "" to accept it (and update the track)."""
        mask = prediction.mask
        area = int(mask.sum())
        if area == 0:
            return "object ended: empty mask"
        if prediction.score < self.min_score:
            return f"object ended: predicted quality {prediction.score:.2f} below {self.min_score:.2f}"
        if area < self.min_area_fraction * track.seed_area:
            return f"object ended: area collapsed to {area / track.seed_area:.1%} of the prompted slice"
        overlap = dice(mask, track.previous_mask)
        if overlap < self.min_overlap:
            return f"object ended: mask moved (overlap {overlap:.2f} with the previous slice)"
        shift = abs(float(image01[mask].mean()) - track.seed_mean) / track.seed_std
        if shift > self.max_intensity_shift:
            return f"object ended: intensity changed by {shift:.1f} standard deviations"
        track.previous_mask = mask
        return ""
