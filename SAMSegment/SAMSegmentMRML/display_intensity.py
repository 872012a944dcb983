"""What the model sees in Slicer: by default the source volume's display window/level, so the
model segments what the user sees; the engine's presets remain options."""

from __future__ import annotations

import math

from SAMSegmentLib.intensity import AUTO_PRESET, IntensityMapping

DISPLAY_PRESET = "display"


def displayedIntensity(volumeNode) -> IntensityMapping | None:
    """The window/level ``volumeNode`` is shown with, as a mapping; None when it has no scalar
    display (a label map, no display node yet) or an unusable window. With automatic window/level
    the display node still reports the values it currently shows."""
    display = volumeNode.GetDisplayNode() if volumeNode is not None else None
    if display is None or not hasattr(display, "GetWindow"):
        return None
    width, level = float(display.GetWindow()), float(display.GetLevel())
    if not (math.isfinite(width) and math.isfinite(level) and width > 0):
        return None
    return IntensityMapping.window(level, width, preset=DISPLAY_PRESET)


def engineIntensity(preset: str, volumeNode) -> str | IntensityMapping:
    """What to send the engine for the effect's intensity choice: the displayed window for
    ``display`` (``auto`` when the volume has none), the preset's name otherwise."""
    if preset != DISPLAY_PRESET:
        return preset
    return displayedIntensity(volumeNode) or AUTO_PRESET
