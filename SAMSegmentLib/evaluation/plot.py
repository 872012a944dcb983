"""Dice against the number of clicks, one line per structure."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..atomic import OutputSet, write_file
from .runner import StructureReport

# The figure formats the plot may be written in (matplotlib picks one by the name's ending).
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def plot_click_curves(path: Path, reports: Sequence[StructureReport], outputs: OutputSet | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display is needed to write a file
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 3.5), dpi=120)
    for report in reports:
        clicks = [step.clicks for step in report.click_curve] or [0]
        slice_dice = [step.dice_slice for step in report.click_curve] or [report.dice_seed_slice]
        line = axes.plot(clicks, slice_dice, marker="o", label=f"{report.name} (slice)")[0]
        volume_dice = [step.dice_3d for step in report.click_curve if step.dice_3d is not None]
        if volume_dice:
            axes.plot(clicks, volume_dice, marker="s", linestyle="--", color=line.get_color(), label=f"{report.name} (3D)")
    axes.set_xlabel("clicks")
    axes.set_ylabel("Dice")
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    try:
        # The temporary name ends with the real one, so matplotlib writes the format it asks for.
        return write_file(path, figure.savefig, outputs=outputs)
    finally:
        plt.close(figure)
