"""Map a volume's voxel values to [0, 1] once per volume, so every slice is scaled alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .volume import Volume

if TYPE_CHECKING:
    from .prompts import Prompts

# (level, width) in Hounsfield units.
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "soft_tissue": (40.0, 400.0),
    "lung": (-600.0, 1500.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "liver": (60.0, 160.0),
}
PERCENTILE_PRESET = "percentile"
PERCENTILE_WIDENED = "percentile_widened"  # a label, not a preset: auto's percentiles widened to a prompt
AUTO_PRESET = "auto"
PRESETS = (AUTO_PRESET, *CT_WINDOWS, PERCENTILE_PRESET)

# ``auto`` on CT: the prompted region's share of voxels below the soft-tissue window (air, lung) from
# which the structure is seen through robust percentiles (about -1000..300 HU on CT) instead. Calibrated
# on the shared CTs on 2026-11-29 (SAMSegmentLib.research.calibration, see
# Testing/calibration/2026-11-29_stop_rule.json): no abdominal organ reaches it.
AIR_SHARE_FOR_WIDE_MAPPING = 0.5
# ``auto`` on CT: the prompted region's share of voxels above the soft-tissue window (bone, contrast),
# which that window saturates, from which the bone window is tried as well; it is kept where the model
# predicts a better mask with it by ``BONE_WINDOW_MIN_QUALITY_GAIN`` (``VolumePredictor.choose_intensity``).
# Calibrated 2026-12-01 on the shared CTs (Testing/calibration/2026-12-01_bone_window.json): one box,
# LiteMedSAM, the 1 mm CT 0.533 -> 0.657 (its 14 ribs 0.31 -> 0.59; two ribs lose, running past their
# ends), the 3 mm CT 0.515 -> 0.524; MobileSAM takes it once. The quality check keeps small
# bright soft structures (contrast-filled vessels and enhancing lesions, radius 4-12 pixels, synthetic)
# in the soft-tissue window, where they are segmented better, and MobileSAM's bones that lose in the
# bone window (quality up to 0.028 higher there); no organ, and neither spinal cord (its box holds
# vertebra), reaches the share.
BRIGHT_SHARE_FOR_BONE_WINDOW = 0.15
BONE_WINDOW_MIN_QUALITY_GAIN = 0.04
# ``auto`` on MR and other non-CT images: the prompted region's share of voxels beyond the volume's robust
# percentiles (which clip them to white or black) from which the range is widened to the prompted voxels'
# own percentiles. A small lesion brighter than everything else (a skull-stripped FLAIR, a crop) is
# under 0.5% of the volume: clipped to the white of the brightest tissue, it has nothing to stand out
# from. No structure of the shared MR has a voxel of its reference box clipped (2026-12-01,
# Testing/calibration/2026-12-01_toward_surroundings.json); a synthetic 3-slice lesion clipped so went
# from running to both ends of the volume (3D Dice 0.37) to stopping at its own.
CLIPPED_SHARE_FOR_WIDER_RANGE = 0.15

# Lowest and highest percentile kept for MR and other non-CT images.
_PERCENTILES = (0.5, 99.5)
# Strided sampling keeps percentile estimation cheap on 512x512x300 volumes.
_MAX_SAMPLES = 2_000_000


@dataclass(frozen=True)
class IntensityMapping:
    """A linear map of voxel values onto [0, 1], clipped: ``low`` -> 0, ``high`` -> 1."""

    low: float
    high: float
    preset: str

    def __post_init__(self) -> None:
        # A zero-width or non-finite range would divide by zero and map every voxel to NaN or one value.
        if not (np.isfinite(self.low) and np.isfinite(self.high) and self.high > self.low):
            raise ValueError(f"An intensity mapping needs finite low < high, got {self.low}..{self.high}.")

    def apply(self, values: np.ndarray) -> np.ndarray:
        scaled = (np.asarray(values, dtype=np.float32) - self.low) / (self.high - self.low)
        return np.clip(scaled, 0.0, 1.0)

    @classmethod
    def window(cls, level: float, width: float, preset: str = "custom") -> IntensityMapping:
        if width <= 0:
            raise ValueError(f"A window width must be positive, got {width}.")
        return cls(level - width / 2.0, level + width / 2.0, preset)


def looks_like_ct(volume: Volume) -> bool:
    """CT when the modality says so, or when values span air (about -1000 HU) to tissue."""
    if volume.modality:
        return volume.modality.upper() == "CT"
    low, high = np.percentile(_sample(volume.array), [1.0, 99.0])
    return bool(low <= -500.0 and high >= -200.0 and volume.array.min() >= -3100)


def mapping_for(volume: Volume, preset: str = AUTO_PRESET, prompted: np.ndarray | None = None) -> IntensityMapping:
    """Choose the intensity mapping of ``volume``.

    ``auto`` takes robust percentiles for MR and other non-CT images, widened to the prompted voxels
    ``prompted`` where they clip them (``widened_to_prompt``). For CT it adapts to the
    prompted structure when ``prompted`` (the voxel values under the first prompt) is given: the
    soft-tissue window, unless at least ``AIR_SHARE_FOR_WIDE_MAPPING`` of those voxels lie below it
    (a lesion in lung, gas-filled bowel), where that window would flatten the surroundings to black
    and percentiles are taken instead; without ``prompted``, the soft-tissue window. The bone window
    for bright prompts needs the model's judgement, so only ``VolumePredictor.choose_intensity``
    takes it (``ct_auto_presets``). A CT window name or ``percentile`` forces that mapping.
    """
    if preset == AUTO_PRESET:
        if not looks_like_ct(volume):
            return widened_to_prompt(mapping_for(volume, PERCENTILE_PRESET), prompted)
        preset = ct_auto_preset(prompted)
    if preset in CT_WINDOWS:
        return IntensityMapping.window(*CT_WINDOWS[preset], preset=preset)
    if preset == PERCENTILE_PRESET:
        # A sparse volume (a few bright voxels) can slip between the strided samples, which then see
        # one value; the whole array decides then, so the range always comes from the data there.
        found = _percentile_range(_sample(volume.array)) or _percentile_range(np.asarray(volume.array))
        assert found is not None, "validate_volume_array refuses constant volumes"
        return IntensityMapping(*found, preset)
    raise ValueError(f"Unknown intensity preset '{preset}'. Choose one of: {', '.join(PRESETS)}.")


def auto_started_on_ct(start: IntensityMapping) -> bool:
    """Whether ``start``, what ``auto`` gave a volume before any prompt, was a CT's: ``auto`` gives a CT a
    window and any other image its percentiles, so the volume need not be examined again."""
    return start.preset in CT_WINDOWS


def ct_auto_preset(prompted: np.ndarray | None) -> str:
    """``auto`` on a CT without a model to ask: the first of ``ct_auto_presets``."""
    return ct_auto_presets(prompted)[0]


def ct_auto_presets(prompted: np.ndarray | None) -> tuple[str, ...]:
    """``auto`` on a CT, from the prompted voxels: the soft-tissue window, unless they are mostly
    below it (percentiles); where enough of them are above it, the bone window is a second candidate,
    for the model to judge (``VolumePredictor.choose_intensity``)."""
    if prompted is None or not np.asarray(prompted).size:
        return ("soft_tissue",)
    prompted = np.asarray(prompted)
    level, width = CT_WINDOWS["soft_tissue"]
    if float(np.mean(prompted < level - width / 2.0)) >= AIR_SHARE_FOR_WIDE_MAPPING:
        return (PERCENTILE_PRESET,)
    if float(np.mean(prompted > level + width / 2.0)) >= BRIGHT_SHARE_FOR_BONE_WINDOW:
        return ("soft_tissue", "bone")
    return ("soft_tissue",)


def widened_to_prompt(mapping: IntensityMapping, prompted: np.ndarray | None) -> IntensityMapping:
    """``auto`` on a non-CT image, from the prompted voxels: the volume's robust percentiles
    ``mapping``, each end moved to the prompted voxels' own percentile where at least
    ``CLIPPED_SHARE_FOR_WIDER_RANGE`` of them lie beyond it."""
    if prompted is None or not np.asarray(prompted).size:
        return mapping
    prompted = np.asarray(prompted, dtype=np.float32)
    own_low, own_high = (float(v) for v in np.percentile(prompted, _PERCENTILES))
    low = own_low if float(np.mean(prompted < mapping.low)) >= CLIPPED_SHARE_FOR_WIDER_RANGE else mapping.low
    high = own_high if float(np.mean(prompted > mapping.high)) >= CLIPPED_SHARE_FOR_WIDER_RANGE else mapping.high
    if (low, high) == (mapping.low, mapping.high):
        return mapping
    return IntensityMapping(min(low, mapping.low), max(high, mapping.high), PERCENTILE_WIDENED)


# Around points (no box), the region whose voxels decide ``auto``: a disc of this radius.
_POINT_REGION_MM = 10.0


def prompted_values(image: np.ndarray, prompts: Prompts, spacing_xy: tuple[float, float]) -> np.ndarray:
    """The voxel values of a slice ``[y, x]`` under ``prompts``: inside the box, or else the
    bounding box of the positive points widened by ``_POINT_REGION_MM``."""
    height, width = image.shape
    if prompts.box is not None:
        x0, y0, x1, y1 = prompts.box
    else:
        positive = [(x, y) for (x, y), label in zip(prompts.points, prompts.labels) if label]
        if not positive:
            return image.reshape(-1)[:0]
        xs, ys = [p[0] for p in positive], [p[1] for p in positive]
        rx, ry = _POINT_REGION_MM / spacing_xy[0], _POINT_REGION_MM / spacing_xy[1]
        x0, y0, x1, y1 = min(xs) - rx, min(ys) - ry, max(xs) + rx, max(ys) + ry
    left, top = max(0, int(np.floor(min(x0, x1)))), max(0, int(np.floor(min(y0, y1))))
    right, bottom = min(width - 1, int(np.ceil(max(x0, x1)))), min(height - 1, int(np.ceil(max(y0, y1))))
    return np.asarray(image[top : bottom + 1, left : right + 1]).reshape(-1)


def _percentile_range(values: np.ndarray) -> tuple[float, float] | None:
    """Robust (low, high) of ``values``, or None when they hold a single value."""
    values = values.reshape(-1)
    lowest = values.min()
    # Background (often exactly 0 in MR) would otherwise pull the low percentile down.
    foreground = values[values != lowest]
    if not foreground.size:
        return None
    low, high = (float(v) for v in np.percentile(foreground, _PERCENTILES))
    if high <= low:
        low, high = float(lowest), float(values.max())
    return low, high


def _sample(array: np.ndarray) -> np.ndarray:
    step = max(1, int(np.ceil(array.size / _MAX_SAMPLES)))
    return np.asarray(array).reshape(-1)[::step].astype(np.float32)
