"""Dice against the number of clicks, one line per structure."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .runner import StructureReport


def plot_click_curves(path: Path, reports: Sequence[StructureReport]) -> None:
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
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
